"""Run an acoustic model over many utterances in length-bucketed batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from asr.data.dataset import Batch, DistributedBucketBatchSampler, SpeechDataset, collate
from asr.decode.ctc import GreedyDecoder
from asr.model.acoustic import AcousticModel
from asr.utils.progress import progress as progress_bar


@dataclass
class Recognition:
    hypotheses: dict[int, str]  # dataset index -> best transcript (failed items absent)
    losses: dict[int, float]  # dataset index -> CTC loss / target length (when computed)
    failed: dict[str, str]  # audio path -> why it could not be decoded

    @property
    def loss(self) -> float:
        """Mean over the utterances of CTC loss per target token (nan when not computed)."""
        return sum(self.losses.values()) / len(self.losses) if self.losses else float("nan")


def batches(
    dataset: SpeechDataset,
    max_batch_seconds: float = 300.0,
    batch_size: int = 64,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """Length-bucketed, unshuffled batches of ``dataset`` (``None`` where every item failed);
    with ``world_size > 1``, this process's share (``rank``) of each batch."""
    sampler = DistributedBucketBatchSampler(
        [u.duration for u in dataset.utterances],
        batch_size,
        max_batch_seconds,
        shuffle=False,
        rank=rank,
        num_replicas=world_size,
    )
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)


def emissions(network: AcousticModel, batch: Batch, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
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
    rank: int = 0,
    world_size: int = 1,
    decoder=None,
) -> Recognition:
    """Decode every utterance of ``dataset`` (greedily unless ``decoder`` is given);
    optionally each one's CTC loss too.

    With ``world_size > 1`` this process decodes only its share (``rank``) of each batch.
    """
    decoder = decoder or GreedyDecoder(tokenizer)
    network.eval()
    hypotheses, losses = {}, {}
    with torch.inference_mode():
        loader = batches(dataset, max_batch_seconds, batch_size, rank, world_size)
        plan = list(loader.batch_sampler)  # each batch's dataset indices, in the loader's (unshuffled) order
        bar = progress_bar(total=sum(map(len, plan)), desc=description, unit="utt", enabled=progress, leave=False)
        audio_seconds = 0.0
        for batch, indices in zip(loader, plan):
            if batch is not None:
                log_probs, lengths = emissions(network, batch, device)
                if compute_loss:
                    per_utterance = torch.nn.functional.ctc_loss(
                        log_probs.transpose(0, 1),
                        batch.targets,
                        lengths,
                        batch.target_lengths,
                        blank=tokenizer.blank_id,
                        reduction="none",
                        zero_infinity=True,
                    ) / batch.target_lengths.clamp_min(1)
                    losses.update(zip(batch.indices, per_utterance.tolist()))
                best = [nbest[0].text for nbest in decoder.decode(log_probs, lengths)]
                hypotheses.update(zip(batch.indices, best))
            audio_seconds += sum(dataset.utterances[i].duration for i in indices)
            bar.set_postfix_str(f"{audio_seconds:.0f} s audio", refresh=False)
            bar.update(len(indices))
        bar.close()
    return Recognition(hypotheses=hypotheses, losses=losses, failed=dict(dataset.failed))
