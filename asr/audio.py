"""Read any audio file soundfile understands as mono float32 at a target rate."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from asr.errors import AudioError


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Load ``path`` as a mono waveform at ``sample_rate``.

    Returns a float32 tensor of shape ``(num_samples,)`` in [-1, 1].
    Raises :class:`AudioError` naming the file when it is missing, unreadable,
    empty, or holds non-finite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from None
    return _mono_at_rate(samples, file_rate, sample_rate, str(path))


def decode_audio(data: bytes, name: str, sample_rate: int) -> torch.Tensor:
    """Like :func:`load_audio` for an encoded file held in memory (e.g. read from a tar shard);
    ``name`` says where it came from in error messages."""
    try:
        samples, file_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise AudioError(f"{name}: cannot read audio ({err})") from None
    return _mono_at_rate(samples, file_rate, sample_rate, name)


def _mono_at_rate(samples: np.ndarray, file_rate: int, sample_rate: int, name: str) -> torch.Tensor:
    """``samples (num_samples, channels)`` -> mono float32 ``(num_samples',)`` at ``sample_rate``."""
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: the file holds no audio samples")
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: the audio holds NaN or infinite samples")
    waveform = torch.from_numpy(samples.mean(axis=1))  # (num_samples,)
    if file_rate != sample_rate:
        waveform = AF.resample(waveform, file_rate, sample_rate)
    return waveform


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header, without decoding the samples."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: cannot read audio header ({err})") from None
    return info.frames / info.samplerate
