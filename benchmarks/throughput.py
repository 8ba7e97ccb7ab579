"""Training throughput of any config on any manifest, as a multiple of real time.

    python benchmarks/throughput.py --config recipes/librispeech/conf_cpu.toml --manifest M.jsonl [--steps 5]

Builds the config's tokenizer (BPE pieces learnt from the manifest when it asks for them)
and model, cuts the manifest into the config's length-bucketed batches (augmentation
off, features computed once up front), runs one warm-up step and then ``--steps``
optimisation steps on the config's device, and prints the audio seconds trained per
wall-clock second: how many times faster than real time an epoch runs.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from asr.data.dataset import BucketBatchSampler, SpeechDataset, collate, read_manifest
from asr.data.text import build_tokenizer
from asr.features.logmel import LogMel
from asr.model.acoustic import AcousticModel
from asr.train.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    config = load_config(args.config)
    config = replace(config, augment=replace(config.augment, freq_masks=0, time_masks=0))
    device = config.train.device if config.train.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    utterances = read_manifest(args.manifest)
    tokenizer = build_tokenizer(config.tokenizer, [u.text for u in utterances])
    dataset = SpeechDataset(utterances, LogMel(config.features), tokenizer)
    sampler = BucketBatchSampler(
        [u.duration for u in utterances], config.train.batch_size, config.train.max_batch_seconds, shuffle=True
    )
    batches = [batch for batch in (collate([dataset[i] for i in indices]) for indices in sampler) if batch]
    torch.manual_seed(0)
    network = AcousticModel(len(tokenizer), config.features, config.model).to(device).train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.train.learning_rate)
    ctc = torch.nn.CTCLoss(blank=tokenizer.blank_id, zero_infinity=True)

    def step(batch) -> None:
        log_probs, lengths = network(batch.features.to(device), batch.feature_lengths.to(device))
        loss = ctc(log_probs.transpose(0, 1), batch.targets.to(device), lengths, batch.target_lengths.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step(batches[0])
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    audio = 0.0
    for i in range(args.steps):
        batch = batches[i % len(batches)]
        step(batch)
        audio += sum(utterances[j].duration for j in batch.indices)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in network.parameters()) / 1e6
    print(
        f"{args.config.name}: {parameters:.1f} M parameters, {len(tokenizer)} output classes, device {device}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"{args.steps} steps, {audio:.0f} s of audio in {seconds:.1f} s: {audio / seconds:.1f}x real time")


if __name__ == "__main__":
    main()
