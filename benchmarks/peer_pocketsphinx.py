"""asr against PocketSphinx on the same clips: WER, CER and real-time factor side by side.

PocketSphinx (``pip install pocketsphinx``; a benchmark dependency only, never one of asr's) decodes
with its default US English setup: the CMU en-us acoustic model, the ``en-us.lm.bin`` trigram LM and
``cmudict-en-us.dict``, all shipped inside its wheel. asr decodes the same manifest twice, greedily and
with the model's default decoder (for the shipped model: beam search with its LM and lexicon, as
``asr transcribe`` does). Both systems' transcripts go through the same normaliser
(:func:`asr.data.text.normalize_text`) and are scored against the same references by the same code
(:func:`asr.evaluation.metrics.error_counts`); utterances whose reference normalises to nothing are left out for
every system, as ``asr evaluate`` does. RTF is decoding seconds (features, network and search; model
loading excluded for both) over audio seconds, on this process' threads.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/peer_pocketsphinx.py MANIFEST [MANIFEST ...] \\
        [--model asr/pretrained/english] [--control OLD_MODEL] [--max-utterances N] [--out DIR] [--json FILE]

With ``--control``, a second asr model (e.g. the one shipped before) is decoded with its own default
decoder in the same run, as a same-machine control, and gets a column of its own.

With ``--out``, each system's transcripts are written as ``DIR/<set>/<system>.jsonl`` for a closer look.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from asr.audio.io import load_audio
from asr.data.dataset import read_manifest
from asr.data.text import normalize_text
from asr.evaluation.evaluate import evaluate
from asr.evaluation.metrics import error_counts
from asr.model.checkpoint import load_model
from asr.utils.errors import AsrError

POCKETSPHINX_RATE = 16000  # the en-us acoustic model's sample rate


def pocketsphinx_decoder():
    """PocketSphinx 5's decoder with its default en-us model, LM and dictionary; quiet."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise SystemExit("pocketsphinx is not installed: pip install pocketsphinx") from None
    return Decoder(samprate=POCKETSPHINX_RATE, loglevel="FATAL")


def pocketsphinx_transcribe(decoder, path: str) -> str:
    """PocketSphinx's best hypothesis for one file (read and resampled to 16 kHz like asr reads it)."""
    samples = load_audio(path, POCKETSPHINX_RATE).numpy()
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


def score(references: dict[str, str], hypotheses: dict[str, str], seconds: float, audio_seconds: float) -> dict:
    """WER/CER over the keys of ``references`` (a missing hypothesis counts as empty), and RTF."""
    keys = list(references)
    counts = error_counts([references[k] for k in keys], [normalize_text(hypotheses.get(k, "")) for k in keys])
    return {"wer": counts.wer, "cer": counts.cer, "rtf": seconds / audio_seconds, "words": counts.num_words}


def benchmark_set(
    manifest: Path, model_path: str | None, max_utterances: int | None, out: Path | None, control: str | None = None
) -> dict:
    utterances = read_manifest(manifest, skip_missing=True)[:max_utterances]
    utterances = [u for u in utterances if normalize_text(u.text)]
    if not utterances:
        raise SystemExit(f"{manifest}: no utterance with a non-empty reference")
    references = {u.key: normalize_text(u.text) for u in utterances}
    audio_seconds = sum(u.duration for u in utterances)
    results = {"set": manifest.stem, "utterances": len(utterances), "audio_seconds": audio_seconds}

    decoder = pocketsphinx_decoder()
    hypotheses, started = {}, time.perf_counter()
    for utt in utterances:
        try:
            hypotheses[utt.key] = pocketsphinx_transcribe(decoder, utt.audio_filepath)
        except AsrError as err:
            print(f"pocketsphinx: {err}", file=sys.stderr)
    results["pocketsphinx"] = score(references, hypotheses, time.perf_counter() - started, audio_seconds)
    systems = {"pocketsphinx": hypotheses}

    model = load_model(model_path)
    runs = [("asr_greedy", model, model.decoder_config(kind="greedy")), ("asr_default", model, model.decoder_config())]
    if control is not None:
        control_model = load_model(control)
        runs.append(("control_default", control_model, control_model.decoder_config()))
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "subset.jsonl"
        subset.write_text("".join(json.dumps(u.to_json()) + "\n" for u in utterances), encoding="utf-8")
        for name, system_model, config in runs:
            summary = evaluate(system_model, subset, Path(tmp) / name, decoder_config=config)
            rows = [json.loads(line) for line in (Path(tmp) / name / "hyp.jsonl").read_text().splitlines()]
            hyps = {row["id"]: row["text"] for row in rows}
            systems[name] = hyps
            results[name] = score(references, hyps, summary["decode_seconds"], audio_seconds)
            results[name]["decoder"] = config.describe()
    if out is not None:
        folder = out / manifest.stem
        folder.mkdir(parents=True, exist_ok=True)
        for name, hyps in systems.items():
            lines = [
                json.dumps({"id": k, "reference": r, "hypothesis": normalize_text(hyps.get(k, ""))})
                for k, r in references.items()
            ]
            (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return results


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", type=Path, metavar="MANIFEST", help="held-out sets (JSON lines)")
    parser.add_argument("--model", help="asr model (default: the one that ships with asr)")
    parser.add_argument("--control", help="a second asr model, decoded with its default decoder in the same run")
    parser.add_argument("--max-utterances", type=int, help="first N utterances of each set")
    parser.add_argument("--out", type=Path, help="folder for each system's transcripts")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()

    rows = [benchmark_set(m, args.model, args.max_utterances, args.out, args.control) for m in args.manifests]
    print(
        f"# asr vs PocketSphinx: commit {commit()}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    control = f" | control default WER ({args.control})" if args.control else ""
    print(
        "| set | utts / words | PocketSphinx WER | asr greedy WER | asr default WER | PocketSphinx CER | "
        f"asr greedy CER | asr default CER | RTF PS / greedy / default{control} |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.control else ""))
    for r in rows:
        ps, gr, de = r["pocketsphinx"], r["asr_greedy"], r["asr_default"]
        control_cell = f" {100 * r['control_default']['wer']:.2f} % |" if args.control else ""
        print(
            f"| {r['set']} | {r['utterances']} / {ps['words']} | {100 * ps['wer']:.2f} % | {100 * gr['wer']:.2f} % | "
            f"**{100 * de['wer']:.2f} %** | {100 * ps['cer']:.2f} % | {100 * gr['cer']:.2f} % | "
            f"{100 * de['cer']:.2f} % | {ps['rtf']:.3f} / {gr['rtf']:.3f} / {de['rtf']:.3f} |{control_cell}"
        )
    for r in rows:
        ratio = r["asr_default"]["wer"] / r["pocketsphinx"]["wer"] if r["pocketsphinx"]["wer"] else float("inf")
        print(f"{r['set']}: asr default / PocketSphinx WER = {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
