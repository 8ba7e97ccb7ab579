"""Speaker-adversarial training: a speaker classifier on the recurrent outputs, trained through
gradient reversal so that the acoustic model learns features that do not tell speakers apart
(speaker-invariant training, Meng et al., 2018; domain-adversarial training, Ganin et al., 2016).

The classifier reads every output frame and is trained to name the utterance's speaker; the
gradient it sends back into the acoustic model is multiplied by ``-weight``, so the same update
that makes the classifier better makes the recurrent outputs worse at telling speakers apart.
The classifier exists only during training: it is not part of the packaged model.
:class:`SpeakerAdversarialTraining` plugs it into training (``[train] speaker_adversary_weight``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from asr.data.dataset import Batch, Utterance
from asr.utils.errors import AsrError

log = logging.getLogger(__name__)

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

    def loss(
        self, encoded: torch.Tensor, lengths: torch.Tensor, speakers: torch.Tensor
    ) -> tuple[torch.Tensor, int, int]:
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


class SpeakerAdversarialTraining:
    """The training extension (see :mod:`asr.train.extensions`; this stage cannot import it, so the
    hooks are matched by name) that trains a :class:`SpeakerAdversary` with the acoustic model.
    Its loss is the mean frame cross-entropy of the labelled utterances' valid frames."""

    name = "speaker_adversary"

    def __init__(self, weight: float, hidden_size: int):
        self.weight, self.hidden_size = weight, hidden_size

    def setup(self, run) -> None:
        """``run``: an :class:`asr.train.extensions.TrainingRun`. Needs the training manifest's
        speaker labels, at least two speakers."""
        if run.train_set is None:
            raise AsrError("speaker_adversary_weight needs a training manifest (not shards)")
        self.speakers, names = speaker_ids(run.train_set.utterances)  # (N,) by dataset index
        if len(names) < 2:
            raise AsrError(
                f"speaker_adversary_weight: the training manifest names {len(names)} speaker(s); "
                'the adversary needs at least two (the manifest\'s "speaker" field)'
            )
        unlabelled = int((self.speakers < 0).sum())
        log.info(
            "speaker-adversarial training over %d speakers, weight %g%s",
            len(names),
            self.weight,
            f" ({unlabelled} utterances without a speaker label are not classified)" if unlabelled else "",
        )
        self.adversary = SpeakerAdversary(run.network.rnn.output_size, len(names), self.hidden_size, self.weight).to(
            run.device
        )

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.adversary.parameters()

    def extra_loss(
        self, encoded: torch.Tensor, lengths: torch.Tensor, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The mean frame cross-entropy and the fraction of frames whose speaker the adversary
        named; ``encoded: (B, T', D)``, ``lengths: (B,)``."""
        loss, frames, correct = self.adversary.loss(encoded, lengths, self.speakers[batch.indices])
        return loss / max(1, frames), {"speaker_accuracy": correct / max(1, frames)}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.adversary.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor] | None) -> None:
        if state is None:
            raise AsrError(
                "speaker_adversary_weight is set, but this run started without speaker-adversarial "
                "training; resume with the config it started with"
            )
        self.adversary.load_state_dict(state)
