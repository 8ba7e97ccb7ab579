"""Audio from a byte stream (a pipe, stdin), block by block as it arrives: WAV, or raw 16-bit PCM.

A stream cannot be sought, so soundfile is of no use here: a WAV header is read with the
standard library's :mod:`wave` (integer PCM, 8 to 32 bits, any channel count), raw PCM is
little-endian signed 16-bit mono at a rate the caller states. Samples come out as float32 in
[-1, 1] the way soundfile scales them (``int16 / 32768``), channels averaged.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import torch

from asr.audio.io import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from asr.utils.errors import AudioError


@dataclass
class AudioStream:
    sample_rate: int  # Hz, from the WAV header or as stated for raw PCM
    blocks: Iterator[torch.Tensor]  # mono float32 blocks (n,), the last one possibly shorter


def read_stream(
    stream: BinaryIO, raw_rate: int | None = None, block_seconds: float = 0.1, name: str = "stdin"
) -> AudioStream:
    """``stream`` as blocks of ``block_seconds``: raw 16-bit PCM at ``raw_rate`` Hz when it is given,
    otherwise a WAV file (its header read now). Raises :class:`AudioError` naming ``name`` when
    the rate is impossible or the stream is not an integer PCM WAV file; a sample cut short by the
    end of the stream is dropped."""
    if raw_rate is not None:
        _check_rate(name, raw_rate)
        return AudioStream(raw_rate, _blocks(stream, raw_rate, 1, 2, block_seconds))
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    if stream.peek(4)[:4] != b"RIFF":
        raise AudioError(f"{name}: not a WAV file (no RIFF header); for raw 16-bit PCM give its sample rate")
    try:
        reader = wave.open(stream, "rb")
    except (wave.Error, EOFError) as err:
        raise AudioError(f"{name}: cannot read the WAV header ({err}); only integer PCM WAV can be streamed") from None
    rate = _check_rate(name, reader.getframerate())
    return AudioStream(rate, _blocks(reader, rate, reader.getnchannels(), reader.getsampwidth(), block_seconds))


def _check_rate(name: str, rate: int) -> int:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{name}: a sample rate of {rate} Hz (expected {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    return rate


def _blocks(
    source: BinaryIO | wave.Wave_read, rate: int, channels: int, width: int, block_seconds: float
) -> Iterator[torch.Tensor]:
    """Blocks of ``block_seconds`` read from ``source`` (a byte stream, or a WAV reader's frames)."""
    frames = max(1, round(block_seconds * rate))
    read = source.readframes if isinstance(source, wave.Wave_read) else lambda n: source.read(n * channels * width)
    while data := read(frames):
        usable = len(data) - len(data) % (channels * width)
        samples = _to_float(data[:usable], width).reshape(-1, channels).mean(axis=1)  # (n,)
        if samples.size:
            yield torch.from_numpy(samples.astype(np.float32))


def _to_float(data: bytes, width: int) -> np.ndarray:
    """Little-endian integer PCM of ``width`` bytes a sample (8-bit: unsigned) -> float64 in [-1, 1]."""
    if width == 1:
        return (np.frombuffer(data, np.uint8).astype(np.float64) - 128) / 128
    if width == 3:  # 24-bit: each sample into the top three bytes of an int32
        padded = np.zeros((len(data) // 3, 4), np.uint8)
        padded[:, 1:] = np.frombuffer(data, np.uint8).reshape(-1, 3)
        return padded.view("<i4")[:, 0] / 2.0**31
    return np.frombuffer(data, f"<i{width}") / 2.0 ** (8 * width - 1)
