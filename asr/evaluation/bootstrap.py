"""Bootstrap over utterances: a confidence interval for a pooled WER, and the paired bootstrap
that compares two systems on the same utterances (Bisani & Ney, ICASSP 2004).

Each bootstrap sample draws the utterances with replacement and pools the
errors and reference words of the draw, so the statistic is the same pooled
WER the report states. Sampling is seeded: the same inputs and seed give the
same interval.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_SAMPLES = 1000  # bootstrap samples drawn by reports and comparisons
DEFAULT_SEED = 0  # seed of the sampling, stated in every report
_CHUNK = 100  # samples drawn at once, bounding memory to _CHUNK x utterances indices


def _resampled_sums(columns: np.ndarray, samples: int, seed: int) -> Iterator[np.ndarray]:
    """Column sums of ``columns`` ``(N, K)`` over utterances drawn with replacement:
    yields ``(chunk, K)`` arrays, ``samples`` rows in all."""
    rng = np.random.default_rng(seed)
    n = columns.shape[0]
    for start in range(0, samples, _CHUNK):
        draws = rng.integers(0, n, size=(min(_CHUNK, samples - start), n))  # (chunk, N)
        yield columns[draws].sum(axis=1)  # (chunk, K)


def _check(errors: Sequence[int], words: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    errors, words = np.asarray(errors, dtype=np.int64), np.asarray(words, dtype=np.int64)
    if errors.shape != words.shape or errors.ndim != 1 or errors.size == 0:
        raise ValueError("errors and words must be equally long, non-empty sequences (one entry per utterance)")
    if (words <= 0).any():
        raise ValueError("every utterance needs at least one reference word")
    return errors, words


def wer_interval(
    errors: Sequence[int],
    words: Sequence[int],
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap interval ``(low, high)`` of the pooled WER ``sum(errors) / sum(words)``,
    from per-utterance word errors and reference word counts."""
    errors, words = _check(errors, words)
    wers = np.concatenate(
        [sums[:, 0] / sums[:, 1] for sums in _resampled_sums(np.stack([errors, words], axis=1), samples, seed)]
    )
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(wers, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedBootstrap:
    difference: float  # WER(B) - WER(A) on the full set (negative: B makes fewer errors)
    low: float  # lower end of the confidence interval of the difference
    high: float  # upper end
    p_value: float  # two-sided: how often a difference this large arises when there is none
    samples: int  # bootstrap samples drawn
    seed: int  # seed of the sampling
    confidence: float  # coverage of [low, high], e.g. 0.95

    def p_text(self) -> str:
        """``p = 0.0123``, or ``p <= 0.0010`` when no sample was as extreme (the resolution of
        ``samples``)."""
        floor = 1 / (self.samples + 1)
        return f"p <= {floor:.4f}" if self.p_value <= floor else f"p = {self.p_value:.4f}"


def paired_bootstrap(
    errors_a: Sequence[int],
    errors_b: Sequence[int],
    words: Sequence[int],
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
) -> PairedBootstrap:
    """Paired bootstrap of ``WER(B) - WER(A)``: both systems are scored on the same resampled
    utterances, so the interval reflects their difference, not the spread of the test set.

    The p-value is the shifted-null two-sided test: the fraction of samples whose difference
    lies at least ``|difference|`` from the bootstrap mean, with the usual +1 correction
    (``(k + 1) / (samples + 1)``), so it is never exactly 0.
    """
    errors_a, words = _check(errors_a, words)
    errors_b, _ = _check(errors_b, words)
    columns = np.stack([errors_a, errors_b, words], axis=1)
    differences = np.concatenate(
        [(sums[:, 1] - sums[:, 0]) / sums[:, 2] for sums in _resampled_sums(columns, samples, seed)]
    )
    observed = float((errors_b.sum() - errors_a.sum()) / words.sum())
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(differences, [tail, 100 - tail])
    # a tiny tolerance so that identical systems (every difference 0) give p = 1
    extreme = np.abs(differences - differences.mean()) >= abs(observed) - 1e-12
    p_value = (int(extreme.sum()) + 1) / (samples + 1)
    return PairedBootstrap(observed, float(low), float(high), min(1.0, p_value), samples, seed, confidence)
