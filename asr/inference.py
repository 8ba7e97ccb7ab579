"""Run an acoustic model over many utterances in length-bucketed batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.data import Batch, BucketBatchSampler, SpeechDataset, collate
from asr.decode import GreedyDecoder
from asr.model import AcousticModel


@dataclass
class Recognition:
    hypotheses: dict[int, str]  # dataset index -> best transcript (failed items absent)
    loss: float  # mean CTC loss over the decoded batches (nan when not computed)
    failed: dict[str, str]  # audio path -> why it could not be decoded


def batches(dataset: SpeechDataset, max_batch_seconds: float = 300.0, batch_size: int = 64) -> DataLoader:
    """Length-bucketed, unshuffled batches of ``dataset`` (``None`` where every item failed)."""
    sampler = BucketBatchSampler(
        [u.duration for u in dataset.utterances], batch_size, max_batch_seconds, shuffle=False
    )
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)


def emissions(
    network: AcousticModel, batch: Batch, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities ``(B, T', V)`` and output lengths ``(B,)`` of one batch, on the CPU."""
    log_probs, lengths = network(batch.features.to(device), batch.feature_lengths.to(device))
    return log_probs.cpu(), lengths.cpu()


def recognize(
    network: AcousticModel,
    dataset: SpeechDataset,
    tokenizer,
    max_batch_seconds: float = 300.0,
    batch_size: int = 64,
    device: str = "cpu",
    compute_loss: bool = False,
    progress: bool = False,
    description: str = "decode",
    decoder=None,
) -> Recognition:
    """Decode every utterance of ``dataset`` (greedily unless ``decoder`` is given);
    optionally the mean CTC loss too."""
    decoder = decoder or GreedyDecoder(tokenizer)
    ctc = torch.nn.CTCLoss(blank=tokenizer.blank_id, zero_infinity=True)
    network.eval()
    hypotheses, losses = {}, []
    with torch.inference_mode():
        loader = batches(dataset, max_batch_seconds, batch_size)
        for batch in tqdm(loader, desc=description, disable=not progress, leave=False, unit="batch"):
            if batch is None:
                continue
            log_probs, lengths = emissions(network, batch, device)
            if compute_loss:
                loss = ctc(log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths)
                losses.append(loss.item())
            best = [nbest[0].text for nbest in decoder.decode(log_probs, lengths)]
            hypotheses.update(zip(batch.indices, best))
    mean_loss = sum(losses) / len(losses) if losses else float("nan")
    return Recognition(hypotheses=hypotheses, loss=mean_loss, failed=dict(dataset.failed))
