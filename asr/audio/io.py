"""Read any audio file soundfile understands as mono float32 at a target rate."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

from asr.utils.errors import AudioError

MIN_SAMPLE_RATE = 1_000  # Hz; a header claiming less is damaged, not speech
MAX_SAMPLE_RATE = 768_000  # Hz; the fastest rate audio interfaces record at
MAX_SECONDS = 3600.0  # longest audio decoded in one piece: an hour is already GBs of activations;
# a longer file is refused from its header, before any sample is read

# file name endings of the formats soundfile (libsndfile) reads, by its format names; headerless RAW
# and Matlab files are left out: their names say nothing about holding audio
FORMAT_SUFFIXES = {
    "WAV": ".wav",
    "WAVEX": ".wav",
    "FLAC": ".flac",
    "OGG": ".ogg .oga .opus",
    "MP3": ".mp3",
    "AIFF": ".aiff .aif .aifc",
    "AU": ".au .snd",
    "CAF": ".caf",
    "W64": ".w64",
    "RF64": ".rf64",
    "NIST": ".sph .nist",
    "VOC": ".voc",
    "IRCAM": ".sf",
    "HTK": ".htk",
    "PAF": ".paf",
    "PVF": ".pvf",
    "SD2": ".sd2",
    "AVR": ".avr",
    "SVX": ".svx .8svx",
    "WVE": ".wve",
    "XI": ".xi",
}

_READ_ERRORS = (soundfile.LibsndfileError, soundfile.SoundFileError, RuntimeError, ValueError, TypeError, OSError)


def _checked_rate(path: Path, rate: int) -> int:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{path}: the header claims a sample rate of {rate} Hz "
            f"(expected {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz); the file is damaged or not audio"
        )
    return rate


def load_audio(
    path: str | Path,
    sample_rate: int,
    offset: float = 0.0,
    duration: float | None = None,
    max_seconds: float = MAX_SECONDS,
) -> torch.Tensor:
    """Load ``path`` (or ``duration`` seconds of it from ``offset``) as a mono waveform at ``sample_rate``.

    Returns a float32 tensor of shape ``(num_samples,)`` in [-1, 1].
    Raises :class:`AudioError` naming the file when it is missing, unreadable,
    empty, has an impossible sample rate, is longer than ``max_seconds``, holds
    non-finite samples, or when the segment starts past the end of the file.
    """
    path = Path(path)
    where = str(path) if offset == 0 and duration is None else f"{path} [segment from {offset:g} s]"
    if not path.is_file():
        raise AudioError(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        with soundfile.SoundFile(str(path)) as audio:
            file_rate = _checked_rate(path, audio.samplerate)
            start = round(offset * file_rate)
            if start and start >= audio.frames:
                raise AudioError(f"{where}: starts after the end of the file ({audio.frames / file_rate:g} s)")
            count = -1 if duration is None else max(1, round(duration * file_rate))  # -1: to the end
            seconds = (audio.frames - start if count < 0 else count) / file_rate
            if seconds > max_seconds:
                raise AudioError(
                    f"{where}: {seconds / 60:.0f} minutes of audio, more than the "
                    f"{max_seconds / 60:.0f} decoded in one piece; split the file first"
                )
            if start:
                audio.seek(start)
            samples = audio.read(count, dtype="float32", always_2d=True)  # (num_samples, channels)
    except _READ_ERRORS as err:
        raise AudioError(f"{where}: cannot read audio ({err})") from None
    return _mono_at_rate(samples, file_rate, sample_rate, where)


def decode_audio(data: bytes, name: str, sample_rate: int) -> torch.Tensor:
    """Like :func:`load_audio` for an encoded file held in memory (e.g. read from a tar shard);
    ``name`` says where it came from in error messages."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            file_rate = _checked_rate(Path(name), audio.samplerate)
            samples = audio.read(dtype="float32", always_2d=True)  # (num_samples, channels)
    except _READ_ERRORS as err:
        raise AudioError(f"{name}: cannot read audio ({err})") from None
    return _mono_at_rate(samples, file_rate, sample_rate, name)


def _mono_at_rate(samples: np.ndarray, file_rate: int, sample_rate: int, name: str) -> torch.Tensor:
    """``samples (num_samples, channels)`` -> mono float32 ``(num_samples',)`` at ``sample_rate``."""
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: the file holds no audio samples")
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: the audio holds NaN or infinite samples")
    mono = samples.mean(axis=1)  # (num_samples,)
    if file_rate != sample_rate:
        # soxr (librosa's resampler) measured 54x faster than torchaudio's sinc resampler at 22.05 -> 16 kHz
        mono = soxr.resample(mono, file_rate, sample_rate).astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(mono))


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header, without decoding the samples."""
    path = Path(path)
    try:
        info = soundfile.info(str(path))
    except _READ_ERRORS as err:
        raise AudioError(f"{path}: cannot read audio header ({err})") from None
    return info.frames / _checked_rate(path, info.samplerate)


def audio_files(folder: str | Path) -> list[Path]:
    """Every file under ``folder`` (at any depth, sorted) named like a format soundfile reads here."""
    available = soundfile.available_formats()
    suffixes = {end for name, ends in FORMAT_SUFFIXES.items() if name in available for end in ends.split()}
    return sorted(path for path in Path(folder).rglob("*") if path.suffix.lower() in suffixes and path.is_file())
