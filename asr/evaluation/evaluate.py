"""Manifest -> decode -> metrics -> report files."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from asr.data.dataset import SpeechDataset, read_manifest
from asr.data.text import normalize_text
from asr.decode.ctc import DecoderConfig, build_decoder
from asr.evaluation.metrics import error_counts
from asr.evaluation.report.markdown import ScoredUtterance, write_reports
from asr.inference.recognize import recognize
from asr.model.checkpoint import PackagedModel
from asr.speakers.adaptation import AdaptConfig, adapt_speakers, check_adaptable
from asr.speakers.normalization import normalize_speakers
from asr.utils.errors import AsrError
from asr.utils.provenance import provenance

log = logging.getLogger(__name__)


def evaluate(
    model: PackagedModel,
    manifest: str | Path,
    out_dir: str | Path,
    model_path: str = "",
    progress: bool = False,
    decoder_config: DecoderConfig = DecoderConfig(),
    adapt: AdaptConfig | None = None,
) -> dict:
    """Decode every utterance of ``manifest`` (greedily unless ``decoder_config`` says otherwise) and write ``summary.json``,
    ``report.md`` and ``hyp.jsonl`` into ``out_dir``; returns the summary.
    ``report.html`` and ``alignments.txt`` come with them (see :mod:`asr.evaluation.report.markdown`).

    Utterances whose audio is missing or unreadable, or whose reference
    normalises to nothing, are not scored; they are listed in the report and
    counted in ``num_failed``.

    With ``adapt``, decoding takes two passes: each speaker label gets a feature transform fitted
    to the first pass's transcripts of their utterances (:mod:`asr.speakers.adaptation`; references are not
    read), and the second pass is scored; the summary's ``adaptation`` holds the settings and the
    first pass's WER.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if adapt is not None:
        check_adaptable(model.network)
    utterances = read_manifest(manifest, skip_missing=True)
    if not utterances:
        raise AsrError(f"{manifest}: no usable utterances to evaluate")
    dataset = SpeechDataset(utterances, model.log_mel, model.tokenizer)
    normalize_speakers(dataset, model.network, progress)
    decoder = build_decoder(decoder_config, model.tokenizer)
    started = time.perf_counter()
    result = recognize(model.network, dataset, model.tokenizer, progress=progress, decoder=decoder)
    adaptation = {}
    if adapt is not None:
        adaptation = _first_pass(result.hypotheses, utterances) | dataclasses.asdict(adapt)
        dataset.speaker_normalization = adapt_speakers(
            model, utterances, result.hypotheses, adapt, base=dataset.speaker_normalization, progress=progress
        )
        result = recognize(model.network, dataset, model.tokenizer, progress=progress, decoder=decoder)
    seconds = time.perf_counter() - started

    scored, failed = [], dict(result.failed)
    for index, utt in enumerate(utterances):
        if index not in result.hypotheses:
            continue
        scored.append(
            ScoredUtterance(
                utt.key,
                normalize_text(utt.text),
                result.hypotheses[index],
                utt.speaker,
                utt.duration,
                utt.audio_filepath,
                utt.offset or 0.0,
            )
        )
    if not scored:
        first = next(iter(failed.items()), ("", "the manifest is empty"))
        raise AsrError(f"{manifest}: no utterance could be scored ({len(failed)} failed; {first[0]}: {first[1]})")
    audio_seconds = sum(u.duration for i, u in enumerate(utterances) if i in result.hypotheses)
    summary = write_reports(
        out_dir,
        scored,
        failed,
        {
            "num_failed": len(failed),
            "failed": failed,
            "manifest": str(manifest),
            "model": model_path,
            "decoder": getattr(decoder, "config", decoder_config).describe(),  # with a lexicon made for a word LM
            "decode_seconds": round(seconds, 3),
            "real_time_factor": round(seconds / audio_seconds, 5) if audio_seconds else None,
            "audio_seconds": round(audio_seconds, 3),
            "model_settings": model.metadata,
            "provenance": provenance(),
        }
        | ({"adaptation": adaptation} if adapt is not None else {}),
        title=f"Evaluation of {Path(manifest).name}",
    )
    log.info("WER %.2f%% (%d utterances) -> %s", 100 * summary["wer"], summary["num_utterances"], out_dir)
    return summary


def _first_pass(hypotheses: dict[int, str], utterances: list) -> dict:
    """The first pass's WER over the utterances it decoded whose reference is not empty."""
    pairs = [(normalize_text(utterances[i].text), text) for i, text in sorted(hypotheses.items())]
    pairs = [(reference, text) for reference, text in pairs if reference]
    if not pairs:
        return {}
    return {"first_pass_wer": error_counts(*map(list, zip(*pairs))).wer}
