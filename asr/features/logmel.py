"""Log-mel filterbank features (torchaudio) and global mean/variance normalisation."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

NORMALIZATIONS = ("global", "speaker", "utterance", "utterance_mean", "none")


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000  # Hz; every input is resampled to this rate
    n_mels: int = 80  # mel filterbank channels
    win_ms: float = 25.0  # analysis window length in milliseconds
    hop_ms: float = 10.0  # frame shift in milliseconds
    n_fft: int = 0  # FFT size; 0 = the next power of two >= the window
    normalization: str = "global"  # "global" (train-set CMVN), "speaker" (each labelled speaker by
    # their own statistics, unlabelled audio by the global ones: asr.speakers.normalization), "utterance"
    # (per-utterance CMVN), "utterance_mean" (per-utterance mean removal: cancels level and
    # microphone colour), or "none"
    log_floor: float = 1e-6  # added to mel power before the log, so silence stays finite
    dynamic_range_db: float = 0.0  # clamp log-mel energies to at most this far below the utterance's
    # loudest bin, so quiet and loud recordings share one floor; 0 = off (fixed absolute floor only)

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, not {self.normalization!r}")
        if self.sample_rate <= 0 or self.n_mels <= 0 or self.hop_ms <= 0 or self.win_ms <= 0:
            raise ValueError("sample_rate, n_mels, win_ms and hop_ms must be positive")
        if self.log_floor <= 0:
            raise ValueError("log_floor must be positive")
        if self.dynamic_range_db < 0:
            raise ValueError("dynamic_range_db must be >= 0 (0 = off)")

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def fft_size(self) -> int:
        return self.n_fft or 1 << (self.win_length - 1).bit_length()


def mel_spectrogram(config: FeatureConfig, center: bool) -> torchaudio.transforms.MelSpectrogram:
    """The power mel spectrogram of ``config`` (Slaney mel scale and norm); ``center``: reflect-pad
    half an FFT at each end, as whole utterances are (streaming pads by itself)."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=config.sample_rate,
        n_fft=config.fft_size,
        win_length=config.win_length,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        power=2.0,
        center=center,
        pad_mode="reflect",
        norm="slaney",
        mel_scale="slaney",
    )


class LogMel(nn.Module):
    """Waveform ``(num_samples,)`` or ``(B, num_samples)`` -> log-mel ``(..., T, n_mels)``.

    Slaney-style mel scale and filter normalisation, like librosa's defaults,
    so the result can be checked against ``librosa.feature.melspectrogram``.
    ``T = 1 + num_samples // hop_length`` (centred frames).
    """

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.mel = mel_spectrogram(config, center=True)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        too_short = self.config.fft_size // 2 + 1 - waveform.shape[-1]
        if too_short > 0:  # reflect padding needs more samples than half an FFT
            waveform = torch.nn.functional.pad(waveform, (0, too_short))
        log_mel = torch.log(self.mel(waveform) + self.config.log_floor)  # (..., n_mels, T)
        if self.config.dynamic_range_db > 0:
            loudest = log_mel.amax(dim=(-2, -1), keepdim=True)  # (..., 1, 1)
            log_mel = torch.maximum(log_mel, loudest - self.config.dynamic_range_db * math.log(10) / 10)
        return log_mel.transpose(-1, -2)  # (..., T, n_mels)

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.config.hop_length


class Normalizer(nn.Module):
    """Mean/variance normalisation of features ``(B, T, F)``.

    ``global``: statistics from the training set, kept as buffers so they travel
    inside the packaged model; ``speaker`` normalises the same way (the dataset has
    already mapped each labelled speaker onto these statistics, see :mod:`asr.speakers.normalization`). ``utterance``: each utterance by its own
    statistics over its valid frames. ``utterance_mean``: each utterance minus its own
    mean (level and channel colour cancel; the scale is kept). ``none``: identity.
    """

    def __init__(self, mode: str, n_mels: int):
        super().__init__()
        self.mode = mode
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    @property
    def uses_statistics(self) -> bool:
        """Whether the mode normalises by training-set statistics (set before training)."""
        return self.mode in ("global", "speaker")

    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-5))

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.mode in ("global", "speaker"):
            return (features - self.mean) / self.std
        if self.mode in ("utterance", "utterance_mean"):
            mask = (torch.arange(features.shape[1], device=features.device)[None, :] < lengths[:, None]).unsqueeze(-1)
            count = lengths.clamp_min(1)[:, None, None].to(features.dtype)  # (B, 1, 1)
            mean = (features * mask).sum(1, keepdim=True) / count  # (B, 1, F)
            if self.mode == "utterance_mean":
                return (features - mean) * mask
            var = (((features - mean) * mask) ** 2).sum(1, keepdim=True) / count
            return (features - mean) / var.sqrt().clamp_min(1e-5) * mask
        return features


class RunningStatistics:
    """Accumulates per-channel mean and standard deviation over many ``(T, F)`` matrices."""

    def __init__(self, n_mels: int):
        self.count = 0
        self.total = torch.zeros(n_mels, dtype=torch.float64)
        self.total_sq = torch.zeros(n_mels, dtype=torch.float64)

    def add(self, features: torch.Tensor) -> None:
        frames = features.to(torch.float64)
        self.count += frames.shape[0]
        self.total += frames.sum(0)
        self.total_sq += (frames**2).sum(0)

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count == 0:
            raise ValueError("no frames were accumulated")
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean**2).clamp_min(0)
        return mean.float(), var.sqrt().float()
