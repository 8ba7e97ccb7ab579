"""The acoustic model in torch (float32) against its ONNX export run by onnxruntime (float32 and int8).

All three run the same clips at the same number of threads (1, then 2), on the same log-mel
features (torchaudio, computed once), and their outputs go through the same beam decoder (the
model's own: lexicon, word LM). Printed per engine and thread count:

- per file: each clip through the network alone, batch 1, as ``asr transcribe`` runs a short file;
- batched: length-sorted padded batches of ``--batch-size`` clips, as ``asr evaluate`` runs;
- real-time factor (network seconds / audio seconds), throughput (audio seconds per second) and
  its ratio to torch at the same threads; end to end: features + network (per file) + beam search;
- WER with the beam decoder, and greedily, and its difference from torch.

Engines take turns within each of ``--rounds`` rounds and the fastest round counts, so a load that
comes and goes on a shared machine falls on all of them alike. The load average is printed.

Usage:
    python benchmarks/onnx_runtime.py [--model MODEL] [--manifest M.jsonl] [--threads 1 2] [--rounds 3]

Without ``--model`` the shipped English model; without ``--manifest`` its held-out clips: the 100
FSDD demo test clips (file indices 0-1) and, when ../shared/data/ljspeech is there, the 100 clips of
its LJ Speech test passage (LJ002-0100 ... 0200; recipes/english/README.md).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import soundfile
import torch

from asr.audio.io import load_audio
from asr.data.dataset import Utterance, read_manifest
from asr.data.text import normalize_text
from asr.decode.ctc import build_decoder
from asr.evaluation.metrics import error_counts
from asr.inference.onnx import export_onnx, load_onnx_model
from asr.model.checkpoint import load_model

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def default_clips() -> list[Utterance]:
    """The shipped English model's held-out clips (see the module's docstring)."""
    clips = [
        Utterance(str(p), DIGITS[int(p.name[0])], soundfile.info(str(p)).duration)
        for p in sorted((ROOT / "data" / "fsdd_demo" / "recordings").glob("*_[0-4].wav"))
    ]
    lj = ROOT.parent / "shared" / "data" / "ljspeech" / "LJSpeech-1.1"
    if (lj / "metadata.csv").is_file():
        with open(lj / "metadata.csv", encoding="utf-8", newline="") as rows:
            for clip, _, text in csv.reader(rows, delimiter="|", quoting=csv.QUOTE_NONE):
                if clip.startswith("LJ002-") and 100 <= int(clip[6:]) <= 200:
                    path = lj / "wavs" / f"{clip}.wav"
                    clips.append(Utterance(str(path), text, soundfile.info(str(path)).duration))
    return clips


def per_file(network, features: list[torch.Tensor]) -> tuple[float, float, list[torch.Tensor]]:
    """Seconds (wall clock and CPU) to run every clip alone, and each clip's log-probabilities ``(T', V)``."""
    outputs = []
    started, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for x in features:
            log_probs, lengths = network(x[None], torch.tensor([len(x)]))
            outputs.append(log_probs[0, : lengths[0]])
    return time.perf_counter() - started, time.process_time() - cpu, outputs


def batched(network, features: list[torch.Tensor], size: int) -> float:
    """Seconds to run every clip in length-sorted padded batches of ``size``."""
    order = sorted(range(len(features)), key=lambda i: len(features[i]))
    started = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(order), size):
            chosen = [features[i] for i in order[first : first + size]]
            network(torch.nn.utils.rnn.pad_sequence(chosen, batch_first=True), torch.tensor([len(x) for x in chosen]))
    return time.perf_counter() - started


def decode(decoder, outputs: list[torch.Tensor]) -> tuple[float, list[str]]:
    started = time.perf_counter()
    texts = [decoder.decode(x[None], torch.tensor([len(x)]))[0][0].text for x in outputs]
    return time.perf_counter() - started, texts


def processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a torch packaged model (default: the shipped English model)")
    parser.add_argument("--manifest", help="clips to run (default: the English model's held-out clips)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the fastest counts")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    model = load_model(args.model)
    clips = read_manifest(args.manifest) if args.manifest else default_clips()
    audio_seconds = sum(u.duration for u in clips)
    references = [normalize_text(u.text) for u in clips]
    scratch = tempfile.TemporaryDirectory(prefix="asr-onnx-bench-")  # removed at exit
    export = Path(scratch.name)
    started = time.perf_counter()
    export_onnx(model, export, int8=True)
    sizes = {name: (export / name).stat().st_size / 1e6 for name in ("model.onnx", "model.int8.onnx")}
    print(
        f"exported in {time.perf_counter() - started:.1f} s: model.onnx {sizes['model.onnx']:.1f} MB, "
        f"model.int8.onnx {sizes['model.int8.onnx']:.1f} MB"
    )
    beam = build_decoder(model.decoder_config(kind="beam"), model.tokenizer)
    greedy = build_decoder(model.decoder_config(kind="greedy"), model.tokenizer)
    waveforms = [load_audio(u.audio_filepath, model.sample_rate) for u in clips]
    print(
        f"{len(clips)} clips, {audio_seconds:.1f} s of audio; commit {commit()}; {processor()}, "
        f"{os.cpu_count()} cores; torch {torch.__version__}; beam {beam.config.beam_size}, LM weight {beam.config.lm_weight:g}"
    )

    rows, decoded = [], {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        with torch.inference_mode():
            features = [model.log_mel(w) for w in waveforms]
        feature_seconds = time.perf_counter() - started
        engines = {
            "torch fp32": model.network,
            "onnx fp32": load_onnx_model(export, threads=threads, precision="fp32").network,
            "onnx int8": load_onnx_model(export, threads=threads, precision="int8").network,
        }
        for network in engines.values():  # warm up: first-call allocations and kernel choices
            per_file(network, features[:3])
        best = {name: {"file": math.inf, "cpu": math.inf, "batch": math.inf} for name in engines}
        outputs = {}
        for _ in range(args.rounds):
            for name, network in engines.items():
                seconds, cpu, outputs[name] = per_file(network, features)
                if seconds < best[name]["file"]:
                    best[name] |= {"file": seconds, "cpu": cpu}
                best[name]["batch"] = min(best[name]["batch"], batched(network, features, args.batch_size))
        for name in engines:
            if name not in decoded:  # decoding runs on one thread whatever --threads says: once is enough
                decode_seconds, texts = decode(beam, outputs[name])
                greedy_wer = error_counts(references, decode(greedy, outputs[name])[1]).wer
                decoded[name] = {
                    "seconds": decode_seconds,
                    "wer": error_counts(references, texts).wer,
                    "greedy": greedy_wer,
                }
        load = (load_before + os.getloadavg()[0]) / 2
        base = best["torch fp32"]
        base_end = feature_seconds + base["file"] + decoded["torch fp32"]["seconds"]
        for name in engines:
            ours = best[name]
            end_to_end = feature_seconds + ours["file"] + decoded[name]["seconds"]
            rows.append(
                f"| {threads} | {name} | {ours['file'] / audio_seconds:.4f} | {audio_seconds / ours['file']:.0f} "
                f"| {base['file'] / ours['file']:.2f} | {ours['cpu'] / audio_seconds:.4f} "
                f"| {ours['batch'] / audio_seconds:.4f} | {audio_seconds / ours['batch']:.0f} "
                f"| {base['batch'] / ours['batch']:.2f} | {end_to_end / audio_seconds:.4f} | {base_end / end_to_end:.2f} "
                f"| {100 * decoded[name]['wer']:.2f}% | {100 * (decoded[name]['wer'] - decoded['torch fp32']['wer']):+.2f} "
                f"| {100 * decoded[name]['greedy']:.2f}% | {load:.1f} |"
            )

    print()
    print(
        "| threads | engine | per-file RTF | audio s/s | x torch | CPU s / audio s | batched RTF | audio s/s | x torch "
        "| end-to-end RTF | x torch | WER beam+LM | vs torch | WER greedy | load avg |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
