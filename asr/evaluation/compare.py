"""Compare two evaluations of the same manifest: pooled WER of each on the utterances both scored,
the difference with a paired-bootstrap interval and p-value, and the utterances that changed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from asr.evaluation.bootstrap import DEFAULT_SAMPLES, DEFAULT_SEED, PairedBootstrap, paired_bootstrap
from asr.evaluation.metrics import ErrorCounts
from asr.evaluation.report.html import comparison_html
from asr.evaluation.scoring import ScoredUtterance, UtteranceScore, per_speaker, pooled_counts, score_utterances
from asr.utils.atomic import write_text_atomic
from asr.utils.errors import AsrError


def read_hypotheses(folder: str | Path) -> list[ScoredUtterance]:
    """The utterances of an evaluation folder, from its ``hyp.jsonl``."""
    path = Path(folder) / "hyp.jsonl"
    if not path.is_file():
        raise AsrError(f"{path}: no such file (give a folder written by `asr evaluate --out`)")
    utterances = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            utterances.append(
                ScoredUtterance(
                    str(row["id"]),
                    row["reference"],
                    row["text"],
                    row.get("speaker"),
                    float(row.get("duration", 0.0)),
                    row.get("audio_filepath", ""),
                    float(row.get("offset", 0.0)),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise AsrError(f"{path}, line {number}: not an evaluation line ({type(err).__name__}: {err})") from None
    if not utterances:
        raise AsrError(f"{path}: no utterances")
    return utterances


@dataclass
class Comparison:
    folder_a: Path  # evaluation folder of system A (the baseline)
    folder_b: Path  # evaluation folder of system B
    name_a: str  # short label of A
    name_b: str  # short label of B
    pairs: list[tuple[UtteranceScore, UtteranceScore]]  # utterances both scored, in A's order
    bootstrap: PairedBootstrap  # WER(B) - WER(A) with its interval and p-value
    notes: list[str] = field(default_factory=list)  # what the reader must know (utterances left out, ...)

    @cached_property
    def counts_a(self) -> ErrorCounts:
        return pooled_counts([a for a, _ in self.pairs])

    @cached_property
    def counts_b(self) -> ErrorCounts:
        return pooled_counts([b for _, b in self.pairs])

    @cached_property
    def per_speaker_a(self) -> dict[str, dict]:
        return per_speaker([a for a, _ in self.pairs])

    @cached_property
    def per_speaker_b(self) -> dict[str, dict]:
        return per_speaker([b for _, b in self.pairs])

    @cached_property
    def better(self) -> list[tuple[UtteranceScore, UtteranceScore]]:
        """Utterances where B makes fewer word errors than A, biggest gain first."""
        return sorted(
            (p for p in self.pairs if p[1].errors < p[0].errors), key=lambda p: (p[1].errors - p[0].errors, p[0].key)
        )

    @cached_property
    def worse(self) -> list[tuple[UtteranceScore, UtteranceScore]]:
        """Utterances where B makes more word errors than A, biggest loss first."""
        return sorted(
            (p for p in self.pairs if p[1].errors > p[0].errors), key=lambda p: (p[0].errors - p[1].errors, p[0].key)
        )

    def verdict(self, level: float = 0.05) -> str:
        """One sentence: which system is better, and whether the difference is significant at ``level``."""
        boot = self.bootstrap
        if boot.difference == 0:
            return "A and B make the same number of word errors."
        better, worse = ("B", "A") if boot.difference < 0 else ("A", "B")
        size = f"{100 * abs(boot.difference):.2f} points"
        if boot.p_value < level:
            return f"{better} is better than {worse} by {size} (significant at {level}: {boot.p_text()})."
        return f"{better} has {size} lower WER than {worse}, but the difference is not significant at {level} ({boot.p_text()})."

    def to_json(self) -> dict:
        boot = self.bootstrap
        return {
            "a": str(self.folder_a),
            "b": str(self.folder_b),
            "num_utterances": len(self.pairs),
            "num_words": self.counts_a.num_words,
            "wer_a": self.counts_a.wer,
            "wer_b": self.counts_b.wer,
            "difference": boot.difference,
            "difference_ci": [boot.low, boot.high],
            "confidence": boot.confidence,
            "p_value": boot.p_value,
            "bootstrap": {"samples": boot.samples, "seed": boot.seed, "resampled": "utterances"},
            "better": [a.key for a, _ in self.better],
            "worse": [a.key for a, _ in self.worse],
            "notes": self.notes,
        }


def compare(
    folder_a: str | Path, folder_b: str | Path, samples: int = DEFAULT_SAMPLES, seed: int = DEFAULT_SEED
) -> Comparison:
    """Pair the utterances of two evaluation folders by id and compare them.

    The references of a shared id must be equal (otherwise these are not evaluations of the same
    manifest); utterances only one side scored are left out of both WERs and counted in ``notes``.
    """
    folder_a, folder_b = Path(folder_a), Path(folder_b)
    utts_a, utts_b = read_hypotheses(folder_a), read_hypotheses(folder_b)
    for folder, utts in ((folder_a, utts_a), (folder_b, utts_b)):
        keys = [u.key for u in utts]
        if len(set(keys)) != len(keys):
            duplicate = next(k for k in keys if keys.count(k) > 1)
            raise AsrError(f"{folder / 'hyp.jsonl'}: utterance id {duplicate!r} appears more than once")
    by_key_b = {u.key: u for u in utts_b}
    common = [u for u in utts_a if u.key in by_key_b]
    if not common:
        raise AsrError(f"{folder_a} and {folder_b} share no utterance id: not evaluations of the same manifest")
    for utt in common:
        other = by_key_b[utt.key]
        if utt.reference != other.reference:
            raise AsrError(
                f"utterance {utt.key!r} has different references in {folder_a} ({utt.reference!r}) and "
                f"{folder_b} ({other.reference!r}): not evaluations of the same manifest"
            )
    notes = []
    only_a = len(utts_a) - len(common)
    only_b = len(utts_b) - len(common)
    if only_a or only_b:
        notes.append(
            f"Compared on the {len(common)} utterances both scored; left out: {only_a} scored only by A, "
            f"{only_b} scored only by B."
        )
    scores_a = score_utterances(common)
    scores_b = score_utterances([by_key_b[u.key] for u in common])
    boot = paired_bootstrap(
        [s.errors for s in scores_a], [s.errors for s in scores_b], [s.num_words for s in scores_a], samples, seed
    )
    name_a, name_b = folder_a.resolve().name, folder_b.resolve().name
    if name_a == name_b:
        name_a, name_b = str(folder_a), str(folder_b)
    return Comparison(folder_a, folder_b, name_a, name_b, list(zip(scores_a, scores_b)), boot, notes)


def comparison_text(comparison: Comparison, limit: int = 10) -> str:
    """A terminal summary: both WERs, the difference with its interval and p-value, the verdict,
    and up to ``limit`` utterances that got worse and better."""
    c, boot = comparison, comparison.bootstrap
    lines = [
        f"A {c.name_a}: WER {100 * c.counts_a.wer:.2f}%  ({c.folder_a})",
        f"B {c.name_b}: WER {100 * c.counts_b.wer:.2f}%  ({c.folder_b})",
        f"{len(c.pairs)} utterances, {c.counts_a.num_words} reference words",
        f"B - A: {100 * boot.difference:+.2f} points, {100 * boot.confidence:.0f}% CI "
        f"[{100 * boot.low:+.2f}, {100 * boot.high:+.2f}], {boot.p_text()} "
        f"(paired bootstrap, {boot.samples} samples, seed {boot.seed})",
        c.verdict(),
        f"B better on {len(c.better)} utterances, worse on {len(c.worse)}, "
        f"same error count on {len(c.pairs) - len(c.better) - len(c.worse)}",
        *c.notes,
    ]
    for title, pairs in (("worse in B", c.worse), ("better in B", c.better)):
        if pairs and limit > 0:
            lines += ["", f"{title} ({min(limit, len(pairs))} of {len(pairs)}):"]
            for a, b in pairs[:limit]:
                lines += [
                    f"  {a.key}: errors {a.errors} -> {b.errors}",
                    f"    ref: {a.reference}",
                    f"    A:   {a.hypothesis}",
                    f"    B:   {b.hypothesis}",
                ]
    return "\n".join(lines)


def write_comparison(comparison: Comparison, out_dir: str | Path) -> Path:
    """Write ``compare.html`` and ``compare.json`` into ``out_dir``; returns the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page, data = comparison_html(comparison), json.dumps(comparison.to_json(), indent=2) + "\n"
    html = out_dir / "compare.html"
    write_text_atomic(html, page)  # both rendered first, each replaced whole: a failure leaves the old pair
    write_text_atomic(out_dir / "compare.json", data)
    return html
