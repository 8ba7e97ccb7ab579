"""Training throughput of the fsdd config, in audio seconds per second, three ways.

    python benchmarks/training.py [--config recipes/fsdd/conf.toml] [--steps 40]

Runs the same training steps (same length-bucketed batches, augmentation off) with
asr's ``RecurrentStack`` on padded batches (exact: no utterance reads padding), with
one ``torch.nn`` RNN around ``pack_padded_sequence`` (exact) and with that RNN on the
padded batch (inexact: the backward direction reads the padding), and prints the ratios.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from asr.data.corpora import prepare_corpus
from asr.data.dataset import BucketBatchSampler, SpeechDataset, collate, read_manifest
from asr.train.config import load_config
from asr.features.logmel import LogMel
from asr.model.acoustic import AcousticModel
from asr.model.recurrent import CELLS
from asr.data.text import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


class TorchRNN(torch.nn.Module):
    """The same recurrent stack as one ``torch.nn.LSTM``/``GRU``/``RNN``, run padded or packed."""

    def __init__(self, config, input_size: int, packed: bool):
        super().__init__()
        self.packed = packed
        self.rnn = CELLS[config.cell](
            input_size, config.hidden_size, config.num_layers, batch_first=True,
            bidirectional=config.bidirectional, dropout=config.dropout,
        )

    def forward(self, x, lengths):
        if not self.packed:
            return self.rnn(x)[0]  # the backward direction reads the padding: inexact
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        return torch.nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def run(config, batches, rnn_variant: str, steps: int) -> float:
    """Seconds for ``steps`` optimisation steps over ``batches`` (after one warm-up step)."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    network = AcousticModel(len(tokenizer), config.features, config.model).train()
    if rnn_variant != "asr":
        network.rnn = TorchRNN(config.model, network.frontend.output_size, packed=rnn_variant == "packed")
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)

    def step(batch):
        log_probs, lengths = network(batch.features, batch.feature_lengths)
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

    seconds = {variant: run(config, batches, variant, args.steps) for variant in ("asr", "packed", "padded")}
    print(f"{args.config.name}: {args.steps} steps, {audio:.0f} s of audio, {torch.get_num_threads()} torch threads")
    print(f"asr RecurrentStack, padded buckets, exact:  {audio / seconds['asr']:8.1f} audio-s/s")
    print(f"torch.nn RNN + pack_padded_sequence, exact: {audio / seconds['packed']:8.1f} audio-s/s")
    print(f"torch.nn RNN on padding, inexact:           {audio / seconds['padded']:8.1f} audio-s/s")
    print(f"asr vs packed: {seconds['packed'] / seconds['asr']:.2f}x faster; "
          f"vs inexact padded: {seconds['padded'] / seconds['asr']:.2f}x")


if __name__ == "__main__":
    main()
