"""LJ Speech 1.1: ``LJSpeech-1.1/metadata.csv`` (``id|raw|normalized``), audio in ``wavs/<id>.wav``.

Whole chapters are held out: a chapter is the id prefix (``LJ003`` in
``LJ003-0042``). ``dev_chapters``/``test_chapters`` choose them; by default the
last chapter with audio is the test set and the one before it the dev set.
When audio covers fewer than three chapters (a partial copy), the last chapter
is cut in two contiguous halves, the first for dev and the second for test, so
no dev or test passage is ever heard in training. The normalized column is the transcript.
"""

from __future__ import annotations

import csv
from pathlib import Path

from asr.data.corpora.common import readable_duration, skip_line, text_lines, warn_missing
from asr.data.dataset import Utterance
from asr.utils.errors import AsrError

DOWNLOAD_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"


def read_metadata(src: Path) -> list[tuple[str, str]]:
    """(clip id, normalized text) for every line of ``metadata.csv``."""
    root = src / "LJSpeech-1.1" if (src / "LJSpeech-1.1").is_dir() else src
    metadata = root / "metadata.csv"
    if not metadata.is_file():
        raise AsrError(f"{src}: no LJSpeech-1.1/metadata.csv")
    rows = []
    for number, line in text_lines(metadata):
        (row,) = csv.reader([line], delimiter="|", quoting=csv.QUOTE_NONE)
        if len(row) != 3:
            skip_line(metadata, number, f"expected 'id|raw|normalized', got {len(row)} fields")
            continue
        rows.append((row[0], row[2]))
    return rows


def chapter(utt: Utterance) -> str:
    """``LJ003`` for clip ``LJ003-0042``."""
    return utt.id.split("-")[0]


def prepare(
    src: Path, dev_chapters: list[str] | None = None, test_chapters: list[str] | None = None
) -> dict[str, list[Utterance]]:
    root = src / "LJSpeech-1.1" if (src / "LJSpeech-1.1").is_dir() else src
    utterances, missing = [], []
    for clip_id, text in read_metadata(src):
        audio = root / "wavs" / f"{clip_id}.wav"
        if not audio.is_file():
            missing.append(str(audio))
            continue
        duration = readable_duration(audio)
        if duration is not None:
            utterances.append(Utterance(str(audio.resolve()), text, duration, "LJ", clip_id))
    warn_missing("ljspeech", missing)
    chapters = sorted({chapter(u) for u in utterances})
    if dev_chapters is None and test_chapters is None and len(chapters) < 3:
        last = [u for u in utterances if chapter(u) == chapters[-1]]
        half = len(last) // 2
        held = {u.id for u in last}
        return {
            "train": [u for u in utterances if u.id not in held],
            "dev": last[:half],
            "test": last[half:],
        }
    test = set(test_chapters or chapters[-1:])
    dev = set(dev_chapters or chapters[-2:-1])
    return {
        "train": [u for u in utterances if chapter(u) not in test | dev],
        "dev": [u for u in utterances if chapter(u) in dev],
        "test": [u for u in utterances if chapter(u) in test],
    }


def lm_text(src: Path, splits: dict[str, list[Utterance]]) -> list[str]:
    """Every normalized sentence of ``metadata.csv`` (with audio here or not) except the
    dev and test ones: the text a word LM may learn from."""
    held_out = {u.id for split in ("dev", "test") for u in splits.get(split, [])}
    return [text for clip_id, text in read_metadata(src) if clip_id not in held_out]
