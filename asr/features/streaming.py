"""Log-mel features computed as the audio arrives, equal to :class:`~asr.features.logmel.LogMel`
over the whole recording.

:class:`LogMel` centres frame ``t`` on sample ``t * hop``: it pads the recording with
``n_fft // 2`` reflected samples at each end and cuts windows of ``n_fft`` samples every ``hop``.
Here the left padding is made as soon as ``n_fft // 2 + 1`` samples have arrived, a frame is
computed once its whole window has arrived, and the samples its successors still need are kept
(less than one window); the right padding, which needs the last samples, is made by
:meth:`StreamingLogMel.finish`. So every frame but the last ``n_fft / (2 hop)`` or so comes out
as soon as the audio under its window is in, and all of them equal the whole-file features up
to float rounding.
"""

from __future__ import annotations

import torch

from asr.features.logmel import FeatureConfig, LogMel, mel_spectrogram
from asr.utils.errors import AsrError


class StreamingLogMel:
    """Waveform chunks ``(n,)`` at ``config.sample_rate`` in, new log-mel frames ``(T_new, n_mels)`` out."""

    def __init__(self, config: FeatureConfig):
        if config.dynamic_range_db > 0:
            raise AsrError(
                "features with dynamic_range_db > 0 are clamped relative to the loudest bin of the whole "
                "utterance, so they cannot be computed as a stream"
            )
        self.config = config
        self.whole = LogMel(config)  # for a recording too short to reflect (below half an FFT)
        self.mel = mel_spectrogram(config, center=False)  # LogMel's transform without its centring
        self.pad = config.fft_size // 2  # reflected samples at each end
        self.received = 0  # samples accepted so far
        self.frames = 0  # frames returned so far
        self.buffer = torch.zeros(0)  # the padded recording from padded index self.start on
        self.start = 0  # padded index of self.buffer[0]; the padded recording is the audio shifted by self.pad

    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """``samples: (n,)`` -> the frames ``(T_new, n_mels)`` whose windows are now complete."""
        started = self.received > self.pad  # the left padding has been made
        self.buffer = torch.cat([self.buffer, samples.to(torch.float32)])
        self.received += len(samples)
        if not started:
            if self.received <= self.pad:
                return self._none()
            left = self.buffer[1 : self.pad + 1].flip(0)  # reflection of samples pad..1 (as torch.stft's "reflect")
            self.buffer = torch.cat([left, self.buffer])
        return self._frames(self.buffer)

    def finish(self) -> torch.Tensor:
        """The remaining frames ``(T_rest, n_mels)``, whose windows reach past the end of the audio."""
        if self.received <= self.pad:  # too short to reflect: LogMel zero-pads it first; no frame was returned
            return self.whole(self.buffer) if self.received else self._none()
        right = self.buffer[-self.pad - 1 : -1].flip(0)  # reflection of the last samples but one
        return self._frames(torch.cat([self.buffer, right]))

    def _frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Frames of ``padded`` (the padded recording from ``self.start``) not yet returned; keeps from
        the next frame's first sample on, and at least ``pad + 1`` samples for the right reflection."""
        n_fft, hop = self.config.fft_size, self.config.hop_length
        offset = self.frames * hop - self.start  # the next frame's first sample in ``padded``
        count = max(0, (len(padded) - offset - n_fft) // hop + 1)
        frames = self._none()
        if count:
            window = padded[offset : offset + (count - 1) * hop + n_fft]
            frames = torch.log(self.mel(window) + self.config.log_floor).transpose(0, 1)  # (count, n_mels)
            self.frames += count
        keep = min(self.frames * hop - self.start, len(padded) - self.pad - 1)
        self.buffer, self.start = padded[keep:], self.start + keep
        return frames

    def _none(self) -> torch.Tensor:
        return torch.zeros(0, self.config.n_mels)
