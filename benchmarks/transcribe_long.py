"""`asr transcribe` on a long recording built from real clips: wall time, real-time factor, peak memory,
and the time to the first output line for a short file.

The recording is LJ Speech clips (at their own 22.05 kHz, so reading and resampling are timed too)
joined by pauses of 0.3-1.0 s of faint noise. Every run is `python -m asr transcribe` in a fresh
process, timed from its start (Python start, imports, model and LM loading included); peak memory
is that process's maximum resident set (``os.wait4``). References measured in the same run:

- the same clips as separate files, transcribed one by one in one process (speed ratio);
- shorter and longer recordings (``--compare-minutes``; clips repeat when the corpus runs out),
  to show that memory does not grow with length;
- the words of the long recording against the per-clip transcripts (what cutting at pauses costs)
  and against the LJ Speech texts.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/transcribe_long.py --model exp/ljspeech \\
        [--decoder-args "--lm exp/ljspeech/lm/words.arpa --lexicon exp/ljspeech/lm/lexicon.txt"] \\
        [--minutes 20] [--compare-minutes 5,60] [--work exp/bench_transcribe_long]

Without --decoder-args the model's stored decoder settings apply (asr tune-lm), else greedy.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import jiwer
import numpy as np
import soundfile

from asr.data.text import normalize_text

ROOT = Path(__file__).resolve().parents[1]
LJSPEECH = ROOT.parent / "shared" / "data" / "ljspeech" / "LJSpeech-1.1"


def build_recording(clips: list[Path], out: Path, minutes: float, seed: int = 0) -> tuple[list[Path], float]:
    """Write clips (in order, from the first again when all are used, until ``minutes``) joined
    by pauses to ``out``; returns the clips used and the recording's seconds. Writes block by block."""
    rng = np.random.default_rng(seed)
    used, frames, rate = [], 0, soundfile.info(str(clips[0])).samplerate
    with soundfile.SoundFile(str(out), "w", samplerate=rate, channels=1, subtype="PCM_16") as sink:
        for clip in itertools.cycle(clips):
            if frames >= minutes * 60 * rate:
                break
            audio, clip_rate = soundfile.read(str(clip), dtype="float32")
            if clip_rate != rate:
                raise SystemExit(f"{clip}: {clip_rate} Hz, expected {rate} Hz like the other clips")
            pause = rng.normal(0, 3e-4, round(rng.uniform(0.3, 1.0) * rate)).astype(np.float32)
            sink.write(np.concatenate([audio, pause]))
            frames += len(audio) + len(pause)
            used.append(clip)
    return used, frames / rate


def run(command: list[str], first_line: bool = False) -> dict:
    """Run ``command``; its wall time, peak RSS (MB), stdout, and (``first_line``) the seconds
    until its first line of output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = None
    lines = []
    for line in process.stdout:
        if first is None:
            first = time.perf_counter() - started
        lines.append(line)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed ({process.returncode}):\n{stderr[-2000:]}")
    return {"wall": wall, "rss_mb": usage.ru_maxrss / 1024, "stdout": "".join(lines), "first_line": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model.pt or an experiment folder")
    parser.add_argument("--decoder-args", default="", help='extra `asr transcribe` options, e.g. "--lm L --lexicon X"')
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the long recording")
    parser.add_argument("--compare-minutes", default="5,60", help="lengths of the memory references (comma-separated)")
    parser.add_argument("--corpus", type=Path, default=LJSPEECH, help="LJSpeech-1.1 folder")
    parser.add_argument("--work", type=Path, default=ROOT / "exp" / "bench_transcribe_long")
    parser.add_argument("--repeats", type=int, default=3, help="short-file latency runs; the fastest counts")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    with open(args.corpus / "metadata.csv", encoding="utf-8") as rows:
        texts = {row[0]: row[2] for row in csv.reader(rows, delimiter="|", quoting=csv.QUOTE_NONE)}
    clips = sorted(p for p in (args.corpus / "wavs").glob("*.wav") if p.stem in texts)
    used, seconds = build_recording(clips, args.work / "long.wav", args.minutes)
    others = {
        m: build_recording(clips, args.work / f"long_{m:g}min.wav", m)[1]
        for m in (float(text) for text in args.compare_minutes.split(",") if text.strip())
    }

    transcribe = [
        sys.executable,
        "-m",
        "asr",
        "transcribe",
        "--model",
        str(args.model),
        *shlex.split(args.decoder_args),
    ]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}")
    print(f"model: {args.model}  decoder args: {args.decoder_args or '(the model stored settings)'}")
    print(
        f"recording: {len(used)} LJ Speech clips ({len(set(used))} different) + pauses, "
        f"{seconds / 60:.1f} min at 22.05 kHz\n"
    )

    latency = [run([*transcribe, str(used[0])], first_line=True) for _ in range(args.repeats)]
    best = min(latency, key=lambda r: r["first_line"])
    print(
        f"short file ({used[0].name}): first output line after {best['first_line']:.2f} s "
        f"(fastest of {args.repeats}; wall {best['wall']:.2f} s, peak RSS {best['rss_mb']:.0f} MB)"
    )

    long = run([*transcribe, str(args.work / "long.wav")])
    clips_run = run([*transcribe, *map(str, used)])
    print(
        f"{seconds / 60:5.1f} min recording: wall {long['wall']:6.1f} s, RTF {long['wall'] / seconds:.4f}, "
        f"peak RSS {long['rss_mb']:.0f} MB"
    )
    print(
        f"{len(used)} clips one by one: wall {clips_run['wall']:6.1f} s, RTF {clips_run['wall'] / seconds:.4f}, "
        f"peak RSS {clips_run['rss_mb']:.0f} MB; long recording / clips wall ratio {long['wall'] / clips_run['wall']:.2f}"
    )
    for minutes, other_seconds in others.items():
        other = run([*transcribe, str(args.work / f"long_{minutes:g}min.wav")])
        print(
            f"{other_seconds / 60:5.1f} min recording: wall {other['wall']:6.1f} s, RTF {other['wall'] / other_seconds:.4f}, "
            f"peak RSS {other['rss_mb']:.0f} MB, {other['rss_mb'] / long['rss_mb']:.2f} x the {seconds / 60:.0f} min one"
        )

    per_clip = " ".join(line.split("\t", 1)[1].strip() for line in clips_run["stdout"].splitlines())
    reference = " ".join(normalize_text(texts[clip.stem]) for clip in used)
    hypothesis = long["stdout"].strip()
    print(
        f"words: long recording vs the per-clip transcripts WER {100 * jiwer.wer(per_clip, hypothesis):.2f} %; "
        f"vs the LJ Speech texts {100 * jiwer.wer(reference, hypothesis):.2f} % "
        f"(per-clip transcripts vs the texts {100 * jiwer.wer(reference, per_clip):.2f} %)"
    )


if __name__ == "__main__":
    main()
