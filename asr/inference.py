"""Run an acoustic model over many utterances in length-bucketed batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.data import BucketBatchSampler, SpeechDataset, collate
from asr.decode import greedy_decode
from asr.model import AcousticModel
from asr.text import CharTokenizer


@dataclass
class Recognition:
    hypotheses: dict[int, str]  # dataset index -> greedy transcript (failed items absent)
    loss: float  # mean CTC loss over the decoded batches (nan when not computed)
    failed: dict[str, str]  # audio path -> why it could not be decoded


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
) -> Recognition:
    """Greedy-decode every utterance of ``dataset``; optionally the mean CTC loss too."""
    sampler = BucketBatchSampler(
        [u.duration for u in dataset.utterances], batch_size, max_batch_seconds, shuffle=False
    )
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    ctc = torch.nn.CTCLoss(blank=tokenizer.blank_id, zero_infinity=True)
    network.eval()
    hypotheses, losses = {}, []
    with torch.inference_mode():
        for batch in tqdm(loader, desc=description, disable=not progress, leave=False, unit="batch"):
            if batch is None:
                continue
            log_probs, lengths = network(batch.features.to(device), batch.feature_lengths.to(device))
            if compute_loss:
                loss = ctc(log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths)
                losses.append(loss.item())
            texts = greedy_decode(log_probs.cpu(), lengths.cpu(), tokenizer)
            hypotheses.update(zip(batch.indices, texts))
    mean_loss = sum(losses) / len(losses) if losses else float("nan")
    return Recognition(hypotheses=hypotheses, loss=mean_loss, failed=dict(dataset.failed))
