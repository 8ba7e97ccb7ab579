"""Manifest -> decode -> metrics -> report files."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from asr.checkpoint import PackagedModel
from asr.data import SpeechDataset, read_manifest
from asr.errors import AsrError
from asr.inference import recognize
from asr.metrics import error_counts
from asr.report import ScoredUtterance, write_hypotheses, write_markdown, write_summary
from asr.text import normalize_text

log = logging.getLogger(__name__)


def evaluate(
    model: PackagedModel,
    manifest: str | Path,
    out_dir: str | Path,
    model_path: str = "",
    progress: bool = False,
) -> dict:
    """Decode every utterance of ``manifest`` greedily and write ``summary.json``,
    ``report.md`` and ``hyp.jsonl`` into ``out_dir``; returns the summary.

    Utterances whose audio is missing or unreadable, or whose reference
    normalises to nothing, are not scored; they are listed in the report and
    counted in ``num_failed``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    utterances = read_manifest(manifest, skip_missing=True)
    if not utterances:
        raise AsrError(f"{manifest}: no usable utterances to evaluate")
    dataset = SpeechDataset(utterances, model.log_mel, model.tokenizer)
    started = time.perf_counter()
    result = recognize(model.network, dataset, model.tokenizer, progress=progress)
    seconds = time.perf_counter() - started

    scored, failed = [], dict(result.failed)
    for index, utt in enumerate(utterances):
        if index not in result.hypotheses:
            continue
        scored.append(
            ScoredUtterance(utt.key, normalize_text(utt.text), result.hypotheses[index], utt.speaker)
        )
    if not scored:
        first = next(iter(failed.items()), ("", "no reason recorded"))
        raise AsrError(f"{manifest}: none of its {len(utterances)} utterances could be decoded (first: {first[1]})")
    counts = error_counts([u.reference for u in scored], [u.hypothesis for u in scored])
    audio_seconds = sum(u.duration for i, u in enumerate(utterances) if i in result.hypotheses)
    summary = write_summary(
        out_dir / "summary.json",
        counts,
        {
            "num_failed": len(failed),
            "failed": failed,
            "manifest": str(manifest),
            "model": model_path,
            "decoder": "greedy",
            "decode_seconds": round(seconds, 3),
            "real_time_factor": round(seconds / audio_seconds, 5) if audio_seconds else None,
        },
    )
    write_markdown(out_dir / "report.md", counts, scored, failed, title=f"Evaluation of {Path(manifest).name}")
    write_hypotheses(out_dir / "hyp.jsonl", scored)
    log.info("WER %.2f%% (%d utterances) -> %s", 100 * counts.wer, counts.num_utterances, out_dir)
    return summary
