"""Search LM weight x word score on a dev set, the acoustic model run once (like Kaldi's lmwt x wip sweep)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from asr.data.dataset import SpeechDataset, read_manifest
from asr.data.text import normalize_text
from asr.decode.ctc import DecoderConfig, build_decoder
from asr.evaluation.metrics import error_counts
from asr.inference.recognize import batches, emissions
from asr.model.checkpoint import PackagedModel
from asr.speakers.normalization import normalize_speakers
from asr.utils.errors import AsrError
from asr.utils.progress import progress as progress_bar


@dataclass(frozen=True)
class GridPoint:
    lm_weight: float  # LM weight tried
    word_score: float  # word score tried
    wer: float  # pooled dev WER with these settings
    cer: float  # pooled dev CER
    seconds: float  # decoding time of the whole dev set


@dataclass(frozen=True)
class TuneResult:
    points: list[GridPoint]  # every setting tried, in grid order
    best: DecoderConfig  # the base config with the best point's settings
    greedy_wer: float  # greedy WER of the same outputs, for reference
    num_utterances: int  # utterances scored

    def to_json(self) -> dict:
        """Every point tried, the best settings and the greedy WER (``asr tune-lm --out``)."""
        return {
            "points": [p.__dict__ for p in self.points],
            "best": self.best.describe(),
            "greedy_wer": self.greedy_wer,
        }

    def best_settings(self) -> dict:
        """The best settings that differ from :class:`DecoderConfig`'s defaults: what the model stores."""
        return {k: v for k, v in self.best.describe().items() if v != getattr(DecoderConfig(), k)}


def tune_lm(
    model: PackagedModel,
    manifest: str,
    base: DecoderConfig,
    lm_weights: list[float],
    word_scores: list[float],
    progress: bool = False,
) -> TuneResult:
    """Decode ``manifest`` with ``base`` at every (LM weight, word score) pair and return the
    WER of each; ties go to the first point in grid order. The network runs once."""
    if base.kind != "beam":
        raise AsrError("tuning needs the beam decoder with an LM (give --lm)")
    utterances = read_manifest(manifest, skip_missing=True)
    dataset = SpeechDataset(utterances, model.log_mel, model.tokenizer)
    normalize_speakers(dataset, model.network, progress)
    outputs: list[tuple[list[int], torch.Tensor, torch.Tensor]] = []  # (indices, (B, T, V), (B,))
    model.network.eval()
    with torch.inference_mode():
        for batch in progress_bar(batches(dataset), desc="acoustic model", unit="batch", enabled=progress, leave=False):
            if batch is not None:
                outputs.append((batch.indices, *emissions(model.network, batch)))
    references = {i: normalize_text(u.text) for i, u in enumerate(utterances)}
    scored = [i for indices, _, _ in outputs for i in indices if references[i]]
    if not scored:
        raise AsrError(f"{manifest}: no utterance with a usable reference to tune on")

    def score(decoder) -> tuple[float, float, float]:
        started = time.perf_counter()
        hypotheses = {}
        for indices, log_probs, lengths in outputs:
            for index, nbest in zip(indices, decoder.decode(log_probs, lengths)):
                hypotheses[index] = nbest[0].text
        counts = error_counts([references[i] for i in scored], [hypotheses[i] for i in scored])
        return counts.wer, counts.cer, time.perf_counter() - started

    greedy_wer = score(build_decoder(DecoderConfig(), model.tokenizer))[0]
    grid = [(w, s) for w in lm_weights for s in word_scores]
    points = []
    for lm_weight, word_score in progress_bar(grid, desc="grid", unit="point", enabled=progress, leave=False):
        config = replace(base, lm_weight=lm_weight, word_score=word_score)
        points.append(GridPoint(lm_weight, word_score, *score(build_decoder(config, model.tokenizer))))
    best = min(points, key=lambda p: (p.wer, p.cer))
    return TuneResult(
        points, replace(base, lm_weight=best.lm_weight, word_score=best.word_score), greedy_wer, len(scored)
    )


def tuning_table(result: TuneResult) -> str:
    """The grid as a Markdown table, WER in percent, the best row marked."""
    lines = ["| LM weight | word score | WER | CER | decode s |", "|---:|---:|---:|---:|---:|"]
    for p in result.points:
        mark = " **best**" if (p.lm_weight, p.word_score) == (result.best.lm_weight, result.best.word_score) else ""
        lines.append(
            f"| {p.lm_weight:g} | {p.word_score:g} | {100 * p.wer:.2f} %{mark} | "
            f"{100 * p.cer:.2f} % | {p.seconds:.2f} |"
        )
    return "\n".join(lines)
