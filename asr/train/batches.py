"""Where training batches come from: a manifest held in memory, or tar shards streamed from disk/URLs.

Both sources give each process its share of every global batch, report how
far into the epoch they are (``position``, stored in checkpoints) and start a
resumed epoch from such a position.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from asr.data.dataset import (
    Batch,
    BucketBatchSampler,
    DistributedBucketBatchSampler,
    SpeechDataset,
    collate,
    drop_longer_than,
    read_manifest,
)
from asr.data.shards import ShardStream, expand_shard_spec, is_shard_spec, shard_durations, shard_features
from asr.data.text import Tokenizer, TokenizerConfig, build_tokenizer
from asr.features.augment import AugmentConfig
from asr.features.logmel import LogMel
from asr.train.distributed import DistributedContext
from asr.utils.errors import AsrError
from asr.utils.threads import single_thread_worker

log = logging.getLogger(__name__)


def _as_is(item):
    """DataLoader collate for sources that yield finished batches (a module-level function so
    worker processes can unpickle it)."""
    return item


class ManifestBatches:
    """Length-bucketed batches of a manifest's utterances; audio is cached in memory once read."""

    def __init__(self, dataset: SpeechDataset, sampler: DistributedBucketBatchSampler, num_workers: int):
        self.dataset = dataset
        self.sampler = sampler
        # Its own generator: creating an iterator must not draw from the global torch RNG,
        # or a resumed run's dropout and SpecAugment masks would differ from an uninterrupted one's.
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            generator=torch.Generator(),
            worker_init_fn=single_thread_worker,
        )
        self.consumed = 0

    @property
    def durations(self) -> list[float]:
        return self.sampler.durations

    def batches_per_epoch(self) -> int:
        return len(self.sampler)

    def epoch(self, epoch: int, position: int | None = None) -> Iterator[Batch | None]:
        """This process' share of each global batch of ``epoch``, from global batch ``position``."""
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.sampler.start = self.consumed = position or 0
        for batch in self.loader:
            self.consumed += 1
            yield batch

    def position(self) -> int:
        """Global batches of the current epoch handed out so far (the same on every process)."""
        return self.consumed

    def resume_position(self, positions: list[Any]) -> int:
        return positions[0]  # global: valid for any number of processes

    def statistics_features(self, limit: int, seed: int) -> Iterator[torch.Tensor]:
        """Un-augmented features ``(T, F)`` of up to ``limit`` utterances in a seeded order."""
        plain = SpeechDataset(self.dataset.utterances, self.dataset.log_mel, self.dataset.tokenizer)
        indices = list(range(len(plain)))
        random.Random(seed).shuffle(indices)
        for index in indices[:limit]:
            item = plain[index]
            if item is not None:
                yield item[0]


class ShardBatches:
    """Batches streamed from WebDataset-format tar shards (see :class:`asr.data.shards.ShardStream`)."""

    def __init__(self, stream: ShardStream, durations: list[float], num_workers: int, global_batch: tuple[int, float]):
        self.stream = stream
        self.durations = durations
        self.num_workers = num_workers
        self.loader = DataLoader(
            stream,
            batch_size=None,
            collate_fn=_as_is,
            num_workers=num_workers,
            generator=torch.Generator(),
            worker_init_fn=single_thread_worker,
        )
        # The epoch length is not known before reading; the schedule uses the number of
        # global batches a manifest of the same utterances would give.
        self.estimated_batches = len(BucketBatchSampler(durations, *global_batch, shuffle=False))
        self.workers = max(1, num_workers)
        self.consumed, self.next_worker = [0] * self.workers, 0

    def batches_per_epoch(self) -> int:
        return self.estimated_batches

    def epoch(self, epoch: int, position: dict | None = None) -> Iterator[Batch | None]:
        self.consumed = list(position["consumed"]) if position else [0] * self.workers
        self.next_worker = position["next_worker"] if position else 0
        self.stream.set_epoch(epoch, skip=self.consumed, first_worker=self.next_worker)
        for worker, batch in self.loader:
            self.consumed[worker] += 1
            self.next_worker = (worker + 1) % self.workers  # the DataLoader asks its workers in turn
            yield batch

    def position(self) -> dict:
        """Batches of the current epoch taken from each DataLoader worker of this process, and
        whose turn is next."""
        return {"consumed": list(self.consumed), "next_worker": self.next_worker}

    def resume_position(self, positions: list[Any]) -> dict | None:
        """This process' saved position, or ``None`` (restart the epoch) when the number of
        processes or workers changed, since then the shards are dealt differently."""
        rank, world = self.stream.rank, self.stream.world_size
        if len(positions) != world or len(positions[rank]["consumed"]) != self.workers:
            log.warning("the number of processes or workers changed: the interrupted epoch restarts from its beginning")
            return None
        return positions[rank]

    def statistics_features(self, limit: int, seed: int) -> Iterator[torch.Tensor]:
        return shard_features(self.stream.urls, self.stream.log_mel, limit, seed)


def training_batches(
    spec: str | Path,
    log_mel: LogMel,
    tokenizer_config: TokenizerConfig,
    augment: AugmentConfig,
    train_config,
    context: DistributedContext,
) -> tuple[ManifestBatches | ShardBatches, Tokenizer]:
    """A manifest path, or shards (folder, ``{a..b}`` pattern, ``.tar`` path or URL), as batches
    for this process, and the tokenizer (a BPE model learns its pieces from the manifest's texts)."""
    tc = train_config
    spec = str(spec)
    if is_shard_spec(spec):
        if tokenizer_config.kind != "char":
            raise AsrError(
                "a BPE tokenizer learns its pieces from a training manifest; train from a manifest, "
                'or use [tokenizer] kind = "char" with shards'
            )
        tokenizer = build_tokenizer(tokenizer_config, [])
        if augment.crop_prob > 0:
            raise AsrError("word cropping (augment.crop_prob) needs random access: train from a manifest, not shards")
        if log_mel.config.normalization == "speaker":
            raise AsrError(
                'normalization = "speaker" needs every utterance of a speaker at hand: '
                "train from a manifest, not shards"
            )
        urls = expand_shard_spec(spec)
        if len(urls) < context.world_size and context.is_main:
            log.warning("%d shard(s) for %d processes: every process reads every shard", len(urls), context.world_size)
        elif len(urls) % context.world_size and context.is_main:
            log.warning(
                "%d shards for %d processes: %d shard(s), a different few each epoch, are left out of every epoch "
                "so that the processes stay in step",
                len(urls),
                context.world_size,
                len(urls) % context.world_size,
            )
        stream = ShardStream(
            urls,
            log_mel,
            tokenizer,
            augment,
            batch_size=max(1, -(-tc.batch_size // context.world_size)),
            max_batch_seconds=tc.max_batch_seconds / context.world_size,
            shuffle_buffer=tc.shuffle_buffer,
            bucket_buffer=tc.bucket_buffer,
            seed=tc.seed,
            rank=context.rank,
            world_size=context.world_size,
        )
        durations = shard_durations(urls)
        if not durations:
            raise AsrError(f"{spec}: the shards hold no usable utterances")
        return ShardBatches(stream, durations, tc.num_workers, (tc.batch_size, tc.max_batch_seconds)), tokenizer
    utterances = read_manifest(spec, skip_missing=True)
    utterances = drop_longer_than(utterances, tc.max_batch_seconds, "a whole batch, max_batch_seconds")
    if not utterances:
        raise AsrError(f"{spec}: no usable utterances to train on")
    tokenizer = build_tokenizer(tokenizer_config, [u.text for u in utterances])  # BPE: learnt from these
    dataset = SpeechDataset(utterances, log_mel, tokenizer, augment=augment, seed=tc.seed)
    sampler = DistributedBucketBatchSampler(
        [u.duration for u in utterances],
        tc.batch_size,
        tc.max_batch_seconds,
        shuffle=True,
        seed=tc.seed,
        rank=context.rank,
        num_replicas=context.world_size,
    )
    return ManifestBatches(dataset, sampler, tc.num_workers), tokenizer
