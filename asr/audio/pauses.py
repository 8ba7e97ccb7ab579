"""Cut a stream of audio into segments at pauses, with a maximum segment length.

An energy detector, chosen over a neural VAD (silero-vad runs a network on every
32 ms, a cost against the 0.01 real-time-factor goal, and brings its own weights) and
over ``webrtcvad`` (unmaintained since 2017, fixed rates only): the frames quieter than
a threshold set from the window's own energy distribution are pauses.

The segmenter consumes blocks lazily and never holds more than ``max_seconds`` plus one
block of audio, so a recording of any length is cut in bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SegmenterConfig:
    max_seconds: float = 20.0  # longest segment; a file no longer than this is one segment
    min_seconds: float = 3.0  # a cut is sought at a pause at least this far into the segment
    min_pause_seconds: float = 0.15  # shortest run of quiet frames that counts as a pause
    frame_seconds: float = 0.02  # energy frame length
    threshold_ratio: float = 0.25  # a frame is quiet below floor + ratio * (loud - floor) in dB, with
    # floor and loud the 5th and 95th percentile frame energies of the window being cut
    silence_db: float = -60.0  # frames below this level (dB full scale) are quiet whatever the window;
    # a segment with no frame above it holds no speech and is skipped
    long_pause_seconds: float = 0.6  # a pause this long (between sentences) ends a segment that is
    # already min_seconds long, so segments look like the utterances models are trained on
    fallback_seconds: float = 3.0  # no pause: cut at the quietest frame of the window's last seconds

    def __post_init__(self):
        if not 0 < self.frame_seconds < self.min_seconds <= self.max_seconds:
            raise ValueError("need 0 < frame_seconds < min_seconds <= max_seconds")
        if not 0 < self.fallback_seconds <= self.max_seconds:
            raise ValueError("fallback_seconds must be in (0, max_seconds]")


@dataclass(frozen=True)
class Segment:
    start: int  # first sample, counted from the start of the stream
    samples: torch.Tensor  # (num_samples,) mono audio

    def start_seconds(self, sample_rate: int) -> float:
        return self.start / sample_rate


def frame_energies_db(samples: torch.Tensor, frame: int) -> torch.Tensor:
    """``samples: (N,)`` -> mean power in dB full scale per whole ``frame`` samples ``(N // frame,)``."""
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)  # (F, frame)
    return 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-10)


def sound_spans(
    samples: torch.Tensor, sample_rate: int, threshold: float = 0.1, min_gap: float = 0.15, min_length: float = 0.1
) -> list[tuple[float, float]]:
    """``samples: (N,)`` -> ``(start, end)`` seconds of each stretch whose 10 ms RMS exceeds
    ``threshold`` x the loudest frame's; gaps shorter than ``min_gap`` seconds are bridged and
    stretches shorter than ``min_length`` dropped. For words separated by pauses (yesno), the words."""
    energies = frame_energies_db(samples, sample_rate // 100)  # (F,) 10 ms frames
    active = (energies > energies.max() + 20 * math.log10(threshold)).tolist() if len(energies) else []
    spans: list[tuple[int, int]] = []
    start = None
    for index, on in enumerate([*active, False]):
        if on and start is None:
            start = index
        elif not on and start is not None:
            if spans and (start - spans[-1][1]) * 0.01 < min_gap:
                start = spans.pop()[0]
            spans.append((start, index))
            start = None
    return [(a * 0.01, b * 0.01) for a, b in spans if (b - a) * 0.01 >= min_length]


def quiet_frames(energies: torch.Tensor, config: SegmenterConfig) -> torch.Tensor:
    """``energies: (F,)`` dB -> ``(F,)`` bool: the frames below the window's threshold."""
    floor, loud = torch.quantile(energies, torch.tensor([0.05, 0.95])).tolist()
    threshold = max(config.silence_db, floor + config.threshold_ratio * (loud - floor))
    return energies < threshold


def pauses(quiet: torch.Tensor, min_frames: int) -> list[tuple[int, int]]:
    """Runs of at least ``min_frames`` consecutive quiet frames, as ``(first, end)`` frame indices."""
    edges = torch.diff(
        quiet.to(torch.int8), prepend=torch.tensor([0], dtype=torch.int8), append=torch.tensor([0], dtype=torch.int8)
    )
    starts = (edges == 1).nonzero().flatten().tolist()
    ends = (edges == -1).nonzero().flatten().tolist()
    return [(s, e) for s, e in zip(starts, ends) if e - s >= min_frames]


def choose_cut(window: torch.Tensor, sample_rate: int, config: SegmenterConfig, final: bool = False) -> int:
    """Where to end a segment that starts ``window: (num_samples,)``.

    In order of preference: the middle of the first long pause (``long_pause_seconds``) at least
    ``min_seconds`` in; with ``final`` (the window is the rest of the stream), the window's end;
    the middle of the longest pause past ``min_seconds`` (the latest of equally long ones), else
    of the longest pause anywhere; the quietest frame of the last ``fallback_seconds``.
    Returns a sample index in ``(0, len(window)]``.
    """
    frame = round(config.frame_seconds * sample_rate)
    if final and len(window) < config.min_seconds * sample_rate:
        return len(window)
    energies = frame_energies_db(window, frame)  # (F,)
    found = pauses(quiet_frames(energies, config), round(config.min_pause_seconds / config.frame_seconds))
    middles = [((s + e) // 2, e - s) for s, e in found if (s + e) // 2 > 0]  # (frame, pause length)
    late = [m for m in middles if m[0] * frame >= config.min_seconds * sample_rate]
    long_frames = round(config.long_pause_seconds / config.frame_seconds)
    long = [m for m in late if m[1] >= long_frames]
    if long:
        return long[0][0] * frame
    if final:
        return len(window)
    if late or middles:
        middle, _ = max(late or middles, key=lambda m: (m[1], m[0]))
        return middle * frame
    tail = max(1, round(config.fallback_seconds / config.frame_seconds))
    quietest = len(energies) - tail + int(torch.argmin(energies[-tail:]))
    return max(1, quietest) * frame


def split_at_pauses(
    blocks: Iterable[torch.Tensor], sample_rate: int, config: SegmenterConfig = SegmenterConfig()
) -> Iterator[Segment]:
    """Consume ``blocks`` (mono ``(n,)`` tensors, one continuous stream) and yield segments of at
    most ``max_seconds``, cut at pauses (:func:`choose_cut`), in order. Segments without a frame
    above ``silence_db`` are skipped. Holds at most ``max_seconds`` plus one block of audio."""
    max_samples = round(config.max_seconds * sample_rate)
    frame = round(config.frame_seconds * sample_rate)
    buffer, start = torch.zeros(0), 0

    def cut_off(cut: int) -> Iterator[Segment]:
        nonlocal buffer, start
        if _holds_sound(buffer[:cut], frame, config):
            yield Segment(start, buffer[:cut].clone())
        buffer, start = buffer[cut:].clone(), start + cut

    for block in blocks:
        buffer = torch.cat([buffer, block])
        while len(buffer) >= max_samples:
            yield from cut_off(choose_cut(buffer[:max_samples], sample_rate, config))
    while len(buffer):
        yield from cut_off(choose_cut(buffer, sample_rate, config, final=True))


def _holds_sound(samples: torch.Tensor, frame: int, config: SegmenterConfig) -> bool:
    energies = frame_energies_db(samples, min(frame, len(samples)))
    return bool((energies > config.silence_db).any())
