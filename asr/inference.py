"""Run an acoustic model over many utterances in length-bucketed batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.data import DistributedBucketBatchSampler, SpeechDataset, collate
from asr.decode import greedy_decode
from asr.model import AcousticModel
from asr.text import CharTokenizer


@dataclass
class Recognition:
    hypotheses: dict[int, str]  # dataset index -> greedy transcript (failed items absent)
    losses: dict[int, float]  # dataset index -> CTC loss / target length (when computed)
    failed: dict[str, str]  # audio path -> why it could not be decoded

    @property
    def loss(self) -> float:
        """Mean over the utterances of CTC loss per target token (nan when not computed)."""
        return sum(self.losses.values()) / len(self.losses) if self.losses else float("nan")


def recognize(
    network: AcousticModel,
    dataset: SpeechDataset,
    tokenizer: CharTokenizer,
    max_batch_seconds: float = 300.0,
    batch_size: int = 64,
    device: str = "cpu",
    compute_loss: bool = False,
    progress: bool = False,
    description: str = "decode",
    rank: int = 0,
    world_size: int = 1,
) -> Recognition:
    """Greedy-decode every utterance of ``dataset``; optionally each one's CTC loss too.

    With ``world_size > 1`` this process decodes only its share (``rank``) of each batch.
    """
    sampler = DistributedBucketBatchSampler(
        [u.duration for u in dataset.utterances], batch_size, max_batch_seconds, shuffle=False,
        rank=rank, num_replicas=world_size,
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    network.eval()
    hypotheses, losses = {}, {}
    with torch.inference_mode():
        for batch in tqdm(loader, desc=description, disable=not progress, leave=False, unit="batch"):
            if batch is None:
                continue
            log_probs, lengths = network(batch.features.to(device), batch.feature_lengths.to(device))
            if compute_loss:
                per_utterance = torch.nn.functional.ctc_loss(
                    log_probs.transpose(0, 1), batch.targets.to(device), lengths, batch.target_lengths.to(device),
                    blank=tokenizer.blank_id, reduction="none", zero_infinity=True,
                ) / batch.target_lengths.to(device).clamp_min(1)
                losses.update(zip(batch.indices, per_utterance.tolist()))
            texts = greedy_decode(log_probs.cpu(), lengths.cpu(), tokenizer)
            hypotheses.update(zip(batch.indices, texts))
    return Recognition(hypotheses=hypotheses, losses=losses, failed=dict(dataset.failed))
