"""Training-time augmentation: waveform perturbation and SpecAugment with frequency warping.

Nothing here runs at inference: waveform perturbation is applied by the
training dataset only, and :class:`SpecAugment` is an identity unless the
model is in training mode.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
import torchaudio
import torchaudio.functional as AF
from torch import nn

TELEPHONE_RATE = 8000  # band-limiting resamples to this rate and back


@dataclass(frozen=True)
class AugmentConfig:
    speed_factors: tuple[float, ...] = (1.0,)  # speed perturbation factors drawn uniformly (1.0 = none)
    noise_prob: float = 0.0  # chance of adding white noise to an utterance
    noise_snr_db: tuple[float, ...] = (10.0, 40.0)  # [low, high] signal-to-noise ratio of that noise
    pad_seconds: float = 0.0  # pad start and end with [0, pad_seconds] of background, so position is no cue
    gain_db: float = 0.0  # random gain drawn from [-gain_db, +gain_db]
    crop_prob: float = 0.0  # chance of cutting a training utterance to a random run of its words (asr.train.word_crop)
    crop_from_epoch: int = 1  # word alignments for cropping come from the model of this epoch on
    reverb_prob: float = 0.0  # chance of convolving an utterance with a synthetic room impulse response
    reverb_rt60: tuple[float, ...] = (0.2, 0.7)  # [low, high] reverberation time (seconds) of that room
    bandlimit_prob: float = 0.0  # chance of band-limiting an utterance to telephone bandwidth (8 kHz sampling)
    freq_warp: float = 0.0  # VTLP-like mel-axis warp factor drawn from [1-w, 1+w]; 0 = off
    freq_masks: int = 2  # SpecAugment frequency masks per utterance
    freq_mask_width: int = 10  # maximum width of a frequency mask, in mel channels
    time_masks: int = 2  # SpecAugment time masks per utterance
    time_mask_width: int = 20  # maximum width of a time mask, in frames
    time_mask_ratio: float = 0.2  # a time mask covers at most this fraction of the utterance

    def __post_init__(self):
        if not self.speed_factors or min(self.speed_factors) <= 0:
            raise ValueError("speed_factors must be a non-empty list of positive numbers")
        if len(self.noise_snr_db) != 2:
            raise ValueError("noise_snr_db must be [low, high]")
        if len(self.reverb_rt60) != 2 or min(self.reverb_rt60) <= 0:
            raise ValueError("reverb_rt60 must be [low, high] in seconds, both positive")
        if not 0 <= self.freq_warp < 0.5:
            raise ValueError("freq_warp must be in [0, 0.5)")


def perturb_waveform(
    waveform: torch.Tensor, sample_rate: int, config: AugmentConfig, rng: random.Random
) -> torch.Tensor:
    """Speed, reverberation, band-limiting, gain and noise perturbation of one waveform ``(num_samples,)``.

    Speed perturbation resamples like Kaldi's ``sox speed``: tempo and pitch
    change together, which also varies the apparent vocal-tract length.
    """
    factor = rng.choice(config.speed_factors)
    if factor != 1.0:
        # Treat the audio as if recorded at sample_rate * factor; round to 100 Hz
        # so the resampling kernel stays small.
        source_rate = int(round(sample_rate * factor / 100.0)) * 100
        waveform = AF.resample(waveform, source_rate, sample_rate)
    if config.reverb_prob > 0 and rng.random() < config.reverb_prob:
        waveform = reverberate(waveform, sample_rate, rng.uniform(*config.reverb_rt60), rng)
    if config.bandlimit_prob > 0 and sample_rate > TELEPHONE_RATE and rng.random() < config.bandlimit_prob:
        waveform = AF.resample(AF.resample(waveform, sample_rate, TELEPHONE_RATE), TELEPHONE_RATE, sample_rate)
    if config.pad_seconds > 0:
        waveform = _pad_with_background(waveform, sample_rate, config.pad_seconds, rng)
    if config.gain_db > 0:
        waveform = waveform * 10 ** (rng.uniform(-config.gain_db, config.gain_db) / 20)
    if config.noise_prob > 0 and rng.random() < config.noise_prob:
        snr_db = rng.uniform(*config.noise_snr_db)
        signal_power = waveform.pow(2).mean().clamp_min(1e-10)
        noise_std = math.sqrt(signal_power.item() / 10 ** (snr_db / 10))
        generator = torch.Generator().manual_seed(rng.getrandbits(31))
        waveform = waveform + noise_std * torch.randn(waveform.shape, generator=generator)
    return waveform


def reverberate(waveform: torch.Tensor, sample_rate: int, rt60: float, rng: random.Random) -> torch.Tensor:
    """``waveform (N,)`` as heard in a room whose reverberation time is ``rt60`` seconds.

    The impulse response is the usual statistical model of a diffuse room: a direct
    path followed by white noise whose energy falls 60 dB in ``rt60``. The output
    keeps the input's length and loudness.
    """
    generator = torch.Generator().manual_seed(rng.getrandbits(31))
    length = max(2, int(rt60 * sample_rate))
    decay = torch.exp(-6.9078 * torch.arange(length) / length)  # amplitude: 60 dB down at rt60
    response = torch.randn(length, generator=generator) * decay * 0.3
    response[0] = 1.0
    wet = AF.fftconvolve(waveform, response)[: waveform.numel()]
    return wet * (waveform.pow(2).mean().sqrt() / wet.pow(2).mean().sqrt().clamp_min(1e-8))


def _pad_with_background(
    waveform: torch.Tensor, sample_rate: int, max_seconds: float, rng: random.Random
) -> torch.Tensor:
    """Add random-length stretches of quiet noise before and after ``waveform (N,)``.

    The noise level is that of the quietest 20 ms window of the clip, so the
    padding sounds like the recording's own background rather than digital zero.
    """
    window = max(1, sample_rate // 50)
    usable = waveform[: waveform.numel() // window * window]
    if usable.numel() == 0:
        return waveform
    floor = usable.reshape(-1, window).pow(2).mean(1).min().sqrt().item()
    generator = torch.Generator().manual_seed(rng.getrandbits(31))
    before, after = (int(rng.uniform(0, max_seconds) * sample_rate) for _ in range(2))
    noise = lambda n: floor * torch.randn(n, generator=generator)  # noqa: E731
    return torch.cat([noise(before), waveform, noise(after)])


class SpecAugment(nn.Module):
    """Frequency warp + frequency/time masks (torchaudio) on features ``(B, T, F)``.

    Active only in training mode. Masks fill with zero, the mean of
    normalised features.
    """

    def __init__(self, config: AugmentConfig):
        super().__init__()
        self.config = config
        self.freq_mask = torchaudio.transforms.FrequencyMasking(config.freq_mask_width, iid_masks=True)
        self.time_mask = torchaudio.transforms.TimeMasking(
            config.time_mask_width, iid_masks=True, p=config.time_mask_ratio
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return features
        if self.config.freq_warp > 0:
            features = self._warp_frequency(features)
        spec = features.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        for _ in range(self.config.freq_masks):
            spec = self.freq_mask(spec)
        for _ in range(self.config.time_masks):
            spec = self.time_mask(spec)
        return spec.squeeze(1).transpose(1, 2)

    def _warp_frequency(self, features: torch.Tensor) -> torch.Tensor:
        """Stretch each utterance's mel axis by its own factor alpha: out[f] = in[f * alpha]."""
        batch, _, channels = features.shape
        alpha = 1 + (torch.rand(batch, 1) * 2 - 1) * self.config.freq_warp  # (B, 1)
        source = (torch.arange(channels)[None, :] * alpha).clamp(max=channels - 1)  # (B, F)
        low = source.floor().long()
        high = (low + 1).clamp(max=channels - 1)
        weight = (source - low)[:, None, :]  # (B, 1, F)

        def channels_at(index: torch.Tensor) -> torch.Tensor:  # (B, F) -> (B, T, F)
            return features.gather(2, index[:, None, :].expand(-1, features.shape[1], -1))

        return channels_at(low) * (1 - weight) + channels_at(high) * weight
