"""Log-mel extraction throughput: asr's torchaudio LogMel against librosa, same audio, same run.

    python benchmarks/features.py [--clips DIR] [--rate 16000] [--repeats 3]

Prints audio seconds processed per second of wall time for each, and the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from asr.audio.io import load_audio
from asr.features.logmel import FeatureConfig, LogMel

ROOT = Path(__file__).resolve().parents[1]


def best_of(repeats: int, work) -> float:
    """Fastest wall time of ``repeats`` calls (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=ROOT / "data" / "fsdd_demo" / "recordings")
    parser.add_argument(
        "--rate", type=int, default=16000, help="feature sample rate (clips are resampled once, before timing)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = FeatureConfig(sample_rate=args.rate)
    waveforms = [load_audio(path, args.rate) for path in sorted(args.clips.glob("*.wav"))]
    arrays = [w.numpy() for w in waveforms]
    audio_seconds = sum(w.numel() for w in waveforms) / args.rate
    log_mel = LogMel(config)

    def ours():
        with torch.inference_mode():
            for waveform in waveforms:
                log_mel(waveform)

    def reference():
        for array in arrays:
            power = librosa.feature.melspectrogram(
                y=array,
                sr=args.rate,
                n_fft=config.fft_size,
                hop_length=config.hop_length,
                win_length=config.win_length,
                n_mels=config.n_mels,
                pad_mode="reflect",
            )
            np.log(power + config.log_floor)

    reference()  # warm-up (numba compiles on first use)
    ours()
    ours_time = best_of(args.repeats, ours)
    reference_time = best_of(args.repeats, reference)
    print(
        f"{len(waveforms)} clips, {audio_seconds:.1f} s of audio at {args.rate} Hz, {torch.get_num_threads()} torch threads"
    )
    print(f"asr LogMel (torchaudio): {audio_seconds / ours_time:10.0f} audio-s/s")
    print(f"librosa melspectrogram:  {audio_seconds / reference_time:10.0f} audio-s/s")
    print(f"speed-up: {reference_time / ours_time:.2f}x")


if __name__ == "__main__":
    main()
