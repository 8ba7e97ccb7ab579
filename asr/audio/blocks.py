"""Read an audio file of any length block by block, as mono float32 at a target rate.

Memory stays bounded by the block size whatever the file's length: soundfile reads
``block_seconds`` at a time, channels are averaged, and soxr's *streaming*
resampler (the same resampler :mod:`asr.audio.io` uses on whole files, keeping its
filter state between blocks) converts the rate, so the concatenated blocks equal
the whole file resampled in one piece up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

from asr.audio.io import _READ_ERRORS, _checked_rate
from asr.utils.errors import AudioError


@dataclass(frozen=True)
class AudioInfo:
    path: Path  # the file as given
    sample_rate: int  # the file's own rate (Hz)
    channels: int  # channels in the file (averaged to mono when read)
    frames: int  # samples per channel

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.frames / self.sample_rate


def audio_info(path: str | Path) -> AudioInfo:
    """The file's header. Raises :class:`AudioError` naming a file that is missing, unreadable,
    empty or claims an impossible rate."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        header = soundfile.info(str(path))
    except _READ_ERRORS as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from None
    info = AudioInfo(path, _checked_rate(path, header.samplerate), header.channels, header.frames)
    if info.frames <= 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    return info


def read_blocks(path: str | Path, sample_rate: int, block_seconds: float = 10.0) -> Iterator[torch.Tensor]:
    """Yield the file as consecutive mono float32 blocks ``(num_samples,)`` at ``sample_rate``,
    each from about ``block_seconds`` of the file (the resampler may hold a few samples back
    and release them with the next block; the last block flushes it).

    Raises :class:`AudioError` naming the file (and the second where reading failed) when it
    cannot be read or holds NaN or infinite samples.
    """
    info = audio_info(path)
    block_frames = max(1, round(block_seconds * info.sample_rate))
    resampler = None
    if info.sample_rate != sample_rate:
        resampler = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32")
    done = 0  # file frames read so far
    try:
        with soundfile.SoundFile(str(info.path)) as audio:
            while True:
                block = audio.read(block_frames, dtype="float32", always_2d=True)  # (n, channels)
                last = block.shape[0] < block_frames  # a short (or empty) read: the end of the file
                finite = np.isfinite(block).all(axis=1)  # (n,)
                if not finite.all():
                    at = (done + int(np.argmin(finite))) / info.sample_rate
                    raise AudioError(f"{path}: the audio holds NaN or infinite samples (at {at:.2f} s)")
                mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]  # (n,)
                if resampler is not None:
                    mono = resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
                done += block.shape[0]
                if mono.size:
                    yield torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
                if last:
                    return
    except _READ_ERRORS as err:
        raise AudioError(f"{path}: cannot read audio after {done / info.sample_rate:.1f} s ({err})") from None
