"""Word timings -> subtitle cues (SRT, WebVTT) grouped into readable lines."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float  # seconds
    text: str  # the words shown


@dataclass(frozen=True)
class CueRules:
    max_chars: int = 42  # longest line, the usual broadcast limit
    max_seconds: float = 6.0  # longest time one cue stays on screen
    max_gap: float = 1.0  # a pause at least this long starts a new cue


def group_words(words, rules: CueRules = CueRules()) -> list[Cue]:
    """Greedy grouping of timed words (objects with ``word``, ``start``, ``end``) into cues:
    a new cue starts when the line would grow past ``max_chars``, the cue past
    ``max_seconds``, or after a pause of ``max_gap``."""
    cues, current = [], []
    for word in words:
        if current:
            text = " ".join(w.word for w in current) + " " + word.word
            if (
                len(text) > rules.max_chars
                or word.end - current[0].start > rules.max_seconds
                or word.start - current[-1].end >= rules.max_gap
            ):
                cues.append(current)
                current = []
        current.append(word)
    if current:
        cues.append(current)
    return [Cue(c[0].start, c[-1].end, " ".join(w.word for w in c)) for c in cues]


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cues: list[Cue]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    blocks = [
        f"{number}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n"
        for number, c in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    """WebVTT: a ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues."""
    blocks = [f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{c.text}\n" for c in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)
