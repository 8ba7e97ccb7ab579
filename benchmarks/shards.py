"""Reading WebDataset shards: asr's tarfile reader against the webdataset package, same shards, same run.

    python benchmarks/shards.py [--clips DIR] [--shard-size 100] [--repeats 3]

Shards the clips once into a temporary folder, then reads every sample of every
shard (tar parsing and grouping by key, no audio decoding) with each reader and
prints utterances per second and the ratio. Then times the full training stream
(asr.data.shards.ShardStream: shuffle and bucketing buffers, FLAC/WAV decoding,
log-mel features) against decoding the same clips from a manifest (SpeechDataset).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile
import webdataset

from asr.data.dataset import SpeechDataset, Utterance
from asr.data.shards import ShardStream, expand_shard_spec, iterate_samples, write_shards
from asr.data.text import CharTokenizer
from asr.features.logmel import FeatureConfig, LogMel

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def best_of(repeats: int, work) -> tuple[float, int]:
    """Fastest wall time of ``repeats`` calls, and what the call returned (an item count)."""
    times, count = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        count = work()
        times.append(time.perf_counter() - started)
    return min(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=ROOT / "data" / "fsdd_demo" / "recordings")
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    utterances = []
    for path in sorted(args.clips.glob("*.wav")):
        info = soundfile.info(str(path))
        utterances.append(Utterance(str(path), DIGITS[int(path.name[0])], info.frames / info.samplerate, id=path.stem))
    with tempfile.TemporaryDirectory() as folder:
        write_shards(utterances, folder, args.shard_size)
        urls = expand_shard_spec(folder)
        ours, n_ours = best_of(args.repeats, lambda: sum(1 for url in urls for _ in iterate_samples(url)))
        theirs, n_theirs = best_of(
            args.repeats, lambda: sum(1 for _ in webdataset.WebDataset(urls, shardshuffle=False, empty_check=False))
        )
        assert n_ours == n_theirs == len(utterances)
        print(f"{len(utterances)} clips in {len(urls)} shards, best of {args.repeats}")
        print(
            f"tar reading  asr {n_ours / ours:9.0f} utt/s   webdataset {n_theirs / theirs:9.0f} utt/s   "
            f"asr/webdataset {theirs / ours:.2f}x"
        )

        features = FeatureConfig(sample_rate=8000, n_mels=40)
        stream = ShardStream(urls, LogMel(features), CharTokenizer(), None, batch_size=16, max_batch_seconds=60.0)
        streamed, n_streamed = best_of(args.repeats, lambda: sum(len(b.indices) for _, b in stream))

        def from_manifest() -> int:
            dataset = SpeechDataset(utterances, LogMel(features), CharTokenizer())  # fresh: no cached audio
            return sum(1 for i in range(len(dataset)) if dataset[i] is not None)

        manifest, n_manifest = best_of(args.repeats, from_manifest)
        print(
            f"featurising  shards {n_streamed / streamed:7.0f} utt/s   manifest {n_manifest / manifest:7.0f} utt/s   "
            f"shards/manifest {manifest / streamed:.2f}x"
        )


if __name__ == "__main__":
    main()
