"""Helpers shared by the corpus modules."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from asr.audio.io import audio_duration
from asr.utils.errors import AudioError

log = logging.getLogger(__name__)


def warn_missing(corpus: str, missing: list[str]) -> None:
    """Log how many transcribed utterances have no audio (a partial download)."""
    if missing:
        log.warning(
            "%s: %d transcribed utterance(s) have no audio and were skipped (first: %s)",
            corpus,
            len(missing),
            missing[0],
        )


def readable_duration(path: Path) -> float | None:
    """Seconds of audio in ``path`` from its header, or ``None`` (with a warning naming the
    file) when the header cannot be read or the file holds no samples: one damaged file
    is left out of the manifest instead of stopping the preparation."""
    try:
        duration = audio_duration(path)
    except AudioError as err:
        log.warning("skipped %s", err)
        return None
    if duration <= 0:
        log.warning("skipped %s: the file holds no audio samples", path)
        return None
    return round(duration, 4)


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for each non-blank UTF-8 line of a corpus' text file; a line that
    is not UTF-8 is skipped with a warning naming it, so one bad byte costs one utterance."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("skipped %s:%d: not UTF-8 text", path, number)
            continue
        if line.strip():
            yield number, line


def skip_line(path: Path, number: int, problem: str) -> None:
    """Warn that line ``number`` of ``path`` is left out, and why."""
    log.warning("skipped %s:%d: %s", path, number, problem)
