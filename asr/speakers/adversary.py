"""Speaker-adversarial training: a speaker classifier on the recurrent outputs, trained through
gradient reversal so that the acoustic model learns features that do not tell speakers apart
(speaker-invariant training, Meng et al., 2018; domain-adversarial training, Ganin et al., 2016).

The classifier reads every output frame and is trained to name the utterance's speaker; the
gradient it sends back into the acoustic model is multiplied by ``-weight``, so the same update
that makes the classifier better makes the recurrent outputs worse at telling speakers apart.
The classifier exists only during training: it is not part of the packaged model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asr.data.dataset import Utterance

UNLABELLED = -100  # speaker id of an utterance with no speaker label: ignored by the loss


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    return _ReverseGradient.apply(x, weight)


class SpeakerAdversary(nn.Module):
    """Frame-level speaker classifier behind a gradient-reversal layer.

    ``encoded: (B, T', D)`` -> ``logits: (B, T', num_speakers)``.
    """

    def __init__(self, input_size: int, num_speakers: int, hidden_size: int, weight: float):
        super().__init__()
        self.weight = weight
        self.classifier = nn.Sequential(
            nn.Linear(input_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, num_speakers)
        )

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.classifier(reverse_gradient(encoded, self.weight))

    def loss(self, encoded: torch.Tensor, lengths: torch.Tensor, speakers: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Summed cross-entropy over the valid frames of labelled utterances, the number of those
        frames and how many of them the classifier named right.

        ``encoded: (B, T', D)``, ``lengths: (B,)``, ``speakers: (B,)`` ids (``UNLABELLED``: skip).
        """
        logits = self(encoded).float()  # (B, T', S)
        frames = torch.arange(logits.shape[1], device=logits.device)
        valid = frames.unsqueeze(0) < lengths.to(logits.device).unsqueeze(1)  # (B, T')
        targets = speakers.to(logits.device).unsqueeze(1).expand_as(valid)  # (B, T')
        targets = targets.masked_fill(~valid, UNLABELLED)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=UNLABELLED, reduction="sum")
        counted = targets != UNLABELLED
        correct = int((logits.argmax(-1) == targets)[counted].sum())
        return loss, int(counted.sum()), correct


def speaker_ids(utterances: list[Utterance]) -> tuple[torch.Tensor, list[str]]:
    """One id per utterance (``UNLABELLED`` where it has no speaker) and the sorted speaker names."""
    names = sorted({u.speaker for u in utterances if u.speaker is not None})
    index = {name: i for i, name in enumerate(names)}
    ids = [UNLABELLED if u.speaker is None else index[u.speaker] for u in utterances]
    return torch.tensor(ids, dtype=torch.long), names
