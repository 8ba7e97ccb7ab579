"""Training throughput of the fsdd config, in audio seconds per second, and the cost of packing.

    python benchmarks/training.py [--config recipes/fsdd/conf.toml] [--steps 40]

Runs the same training steps (same batches, augmentation off so both see identical
input) with padded, length-bucketed batches (what asr does) and with
``pack_padded_sequence`` around the RNN, and prints both and the ratio.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from asr.corpora import prepare_corpus
from asr.data import BucketBatchSampler, SpeechDataset, collate, read_manifest
from asr.experiment import load_config
from asr.features import LogMel
from asr.model import AcousticModel
from asr.text import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def packed_forward(network: AcousticModel):
    """A forward pass that packs the RNN input, for comparison with padding."""

    def forward(features, lengths):
        x = network.normalizer(features, lengths)
        x, lengths = network.frontend(x, lengths)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = network.rnn(packed)
        x, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        return network.output(x).log_softmax(-1), lengths

    return forward


def run(config, batches, forward_of, steps: int) -> float:
    """Seconds for ``steps`` optimisation steps over ``batches`` (after one warm-up step)."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    network = AcousticModel(len(tokenizer), config.features, config.model).train()
    forward = forward_of(network)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)

    def step(batch):
        log_probs, lengths = forward(batch.features, batch.feature_lengths)
        loss = ctc(log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(batches[0])
    started = time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "recipes" / "fsdd" / "conf.toml")
    parser.add_argument("--src", type=Path, default=ROOT / "data" / "fsdd_demo")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--work", type=Path, default=ROOT / "exp" / "benchmark_training")
    args = parser.parse_args()

    config = load_config(args.config)
    config = replace(config, augment=replace(config.augment, freq_masks=0, time_masks=0))
    prepare_corpus("fsdd", args.src, args.work)
    utterances = read_manifest(args.work / "train.jsonl")
    dataset = SpeechDataset(utterances, LogMel(config.features), CharTokenizer())
    sampler = BucketBatchSampler(
        [u.duration for u in utterances], config.train.batch_size, config.train.max_batch_seconds, shuffle=True
    )
    batches = [collate([dataset[i] for i in indices]) for indices in sampler]
    batch_seconds = [sum(utterances[i].duration for i in b.indices) for b in batches]
    audio = sum(batch_seconds[i % len(batches)] for i in range(args.steps))

    padded = run(config, batches, lambda network: network, args.steps)
    packed = run(config, batches, packed_forward, args.steps)
    print(f"{args.config.name}: {args.steps} steps, {audio:.0f} s of audio, {torch.get_num_threads()} torch threads")
    print(f"padded + length buckets (asr): {audio / padded:8.1f} audio-s/s")
    print(f"pack_padded_sequence:          {audio / packed:8.1f} audio-s/s")
    print(f"padded is {packed / padded:.2f}x faster")


if __name__ == "__main__":
    main()
