"""Acoustic model: normalisation -> SpecAugment -> subsampling front end -> RNN stack -> CTC head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from asr.features.augment import AugmentConfig, SpecAugment
from asr.features.logmel import FeatureConfig, Normalizer
from asr.model.recurrent import CELLS, RecurrentStack


@dataclass(frozen=True)
class ModelConfig:
    frontend: str = "stack"  # "stack" (frame stacking) or "conv" (strided 2-D convolutions)
    subsampling: int = 4  # time reduction of the front end: 2 or 4 for conv, any >= 1 for stack
    conv_channels: int = 32  # channels of each convolution in the conv front end
    cell: str = "lstm"  # recurrent cell: "lstm", "gru" or "rnn"
    num_layers: int = 3  # stacked recurrent layers
    hidden_size: int = 256  # units per direction in each recurrent layer
    bidirectional: bool = True  # read the utterance in both directions
    dropout: float = 0.2  # dropout between recurrent layers and before the output layer
    lookahead_frames: int = 0  # front-end frames after each frame joined to it before the RNN, so a
    # unidirectional (streamable) model sees that far ahead: N frames = N x subsampling x hop of latency

    def __post_init__(self):
        if self.frontend not in ("conv", "stack"):
            raise ValueError(f"frontend must be conv|stack, not {self.frontend!r}")
        if self.frontend == "conv" and self.subsampling not in (2, 4):
            raise ValueError("the conv front end subsamples by 2 or 4")
        if self.subsampling < 1:
            raise ValueError("subsampling must be >= 1")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, not {self.cell!r}")
        if self.num_layers < 1 or self.hidden_size < 1:
            raise ValueError("num_layers and hidden_size must be positive")
        if self.lookahead_frames < 0:
            raise ValueError("lookahead_frames must be >= 0")
        if self.lookahead_frames and self.bidirectional:
            raise ValueError(
                "lookahead_frames is for unidirectional models (a bidirectional one sees the whole utterance)"
            )


def zero_padding(x: torch.Tensor, lengths: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    """Zero every frame at or after its utterance's length along ``time_dim`` (``lengths: (B,)``),
    so what a front end computes near an utterance's end does not depend on its batch mates."""
    steps = torch.arange(x.shape[time_dim], device=x.device)
    shape = [1] * x.dim()
    shape[0], shape[time_dim] = -1, x.shape[time_dim]  # -1: the batch, also in an exported graph (not len(lengths))
    keep = (steps.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)).reshape(shape)
    return x * keep


class ConvFrontEnd(nn.Module):
    """Strided 3x3 convolutions over (time, mel): ``(B, T, F) -> (B, T', C * F')``.

    Each convolution halves time and frequency: ``T' = floor((T - 1) / 2) + 1`` per layer.
    """

    def __init__(self, n_mels: int, channels: int, subsampling: int):
        super().__init__()
        self.convs, in_channels, freq = nn.ModuleList(), 1, n_mels
        for _ in range({2: 1, 4: 2}[subsampling]):
            self.convs.append(nn.Conv2d(in_channels, channels, 3, stride=2, padding=1))
            in_channels, freq = channels, (freq - 1) // 2 + 1
        self.output_size = channels * freq

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(1)  # (B, 1, T, F)
        for conv in self.convs:
            x = torch.relu(conv(zero_padding(x, lengths, time_dim=2)))  # (B, C, T', F')
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1
        return x.permute(0, 2, 1, 3).flatten(2), lengths  # (B, T', C * F')


class StackFrontEnd(nn.Module):
    """Concatenate ``k`` consecutive frames: ``(B, T, F) -> (B, ceil(T / k), k * F)``."""

    def __init__(self, n_mels: int, factor: int):
        super().__init__()
        self.factor = factor
        self.output_size = n_mels * factor

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, frames, channels = x.shape
        pad = (-frames) % self.factor
        x = nn.functional.pad(zero_padding(x, lengths), (0, 0, 0, pad))  # (B, T + pad, F)
        x = x.reshape(batch, (frames + pad) // self.factor, self.factor * channels)
        return x, torch.div(lengths + self.factor - 1, self.factor, rounding_mode="floor")


class Lookahead(nn.Module):
    """Frame ``t`` joined with frames ``t+1..t+ahead``: ``(B, T, D) -> (B, T, (ahead + 1) * D)``; frames
    past an utterance's length count as zeros. No weights; ``ahead = 0`` is the identity."""

    def __init__(self, input_size: int, ahead: int):
        super().__init__()
        self.ahead = ahead
        self.output_size = input_size * (ahead + 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.ahead == 0:
            return x
        padded = nn.functional.pad(zero_padding(x, lengths), (0, 0, 0, self.ahead))  # (B, T + ahead, D)
        return join_frames(padded, x.shape[1], self.ahead)


def join_frames(x: torch.Tensor, frames: int, ahead: int) -> torch.Tensor:
    """``x: (B, frames + ahead, D)`` -> ``(B, frames, (ahead + 1) * D)``: each frame followed by the
    next ``ahead`` (shared with the streaming network, :mod:`asr.model.streaming`)."""
    return torch.cat([x[:, k : k + frames] for k in range(ahead + 1)], dim=-1)


class AcousticModel(nn.Module):
    """Log-mel features ``(B, T, n_mels)`` -> CTC log-probabilities ``(B, T', vocab)``."""

    def __init__(
        self,
        vocab_size: int,
        features: FeatureConfig,
        config: ModelConfig,
        augment: AugmentConfig | None = None,
    ):
        super().__init__()
        self.config = config
        self.feature_config = features
        self.normalizer = Normalizer(features.normalization, features.n_mels)
        self.spec_augment = SpecAugment(augment or AugmentConfig())
        if config.frontend == "conv":
            self.frontend = ConvFrontEnd(features.n_mels, config.conv_channels, config.subsampling)
        else:
            self.frontend = StackFrontEnd(features.n_mels, config.subsampling)
        self.lookahead = Lookahead(self.frontend.output_size, config.lookahead_frames)
        self.rnn = RecurrentStack(
            config.cell,
            self.lookahead.output_size,
            config.hidden_size,
            config.num_layers,
            config.bidirectional,
            config.dropout,
        )
        if config.cell == "lstm":
            self._open_forget_gates()
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(self.rnn.output_size, vocab_size)

    def _open_forget_gates(self) -> None:
        """Start LSTM forget-gate biases at 1 (Jozefowicz et al., 2015), which helps CTC training
        leave the all-blank plateau early."""
        hidden = self.config.hidden_size
        with torch.no_grad():
            for name, bias in self.rnn.named_parameters():
                if name.rsplit(".", 1)[-1].startswith("bias_ih"):  # gate order: input, forget, cell, output
                    bias[hidden : 2 * hidden].fill_(1.0)

    def encode(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features: (B, T, F)``, ``lengths: (B,)`` -> recurrent outputs ``(B, T', H * directions)``,
        ``lengths: (B,)``."""
        x = self.normalizer(features, lengths)
        x = self.spec_augment(x)
        x, lengths = self.frontend(x, lengths)  # (B, T', D)
        x = self.lookahead(x, lengths)  # (B, T', D * (lookahead_frames + 1))
        return self.rnn(x, lengths), lengths  # (B, T', H * directions)

    def classify(self, encoded: torch.Tensor) -> torch.Tensor:
        """Recurrent outputs ``(B, T', H * directions)`` -> CTC log-probabilities ``(B, T', V)``."""
        return self.output(self.dropout(encoded)).log_softmax(-1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features: (B, T, F)``, ``lengths: (B,)`` -> ``log_probs: (B, T', V)``, ``lengths: (B,)``."""
        encoded, lengths = self.encode(features, lengths)
        return self.classify(encoded), lengths

    @property
    def frame_shift_seconds(self) -> float:
        """Seconds between two output frames (feature hop times subsampling)."""
        return self.feature_config.hop_ms / 1000 * self.config.subsampling
