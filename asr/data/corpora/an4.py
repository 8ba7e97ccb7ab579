"""CMU AN4: ``etc/an4_{train,test}.{transcription,fileids}``, audio under ``wav/``.

Transcription lines read ``TEXT (utt-id)``, sometimes wrapped in ``<s> ... </s>``.
Audio may be ``.wav`` (16 kHz) or the original ``.sph``/``.raw``; only files
soundfile can read are used. Dev: the training utterances of every 10th speaker
in sorted order (speakers unseen in training). Test: the corpus' test list; when
none of its audio is here (a partial copy), the training utterances of every 3rd
speaker instead, so there is still a test set of unseen speakers.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from asr.data.corpora.common import readable_duration, skip_line, text_lines, warn_missing
from asr.data.dataset import Utterance
from asr.utils.errors import AsrError

log = logging.getLogger(__name__)

DOWNLOAD_URL = None  # the CMU tarball holds raw/SPHERE audio; point --src at a converted copy
LINE = re.compile(r"^(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^()]+)\)\s*$")
DEV_SPEAKER_STRIDE = 10
TEST_SPEAKER_STRIDE = 3  # used only when the test list has no audio here


def _read_list(src: Path, part: str) -> list[tuple[str, str]]:
    """(relative audio path without extension, text) pairs of ``an4_<part>``."""
    transcription = src / "etc" / f"an4_{part}.transcription"
    fileids = src / "etc" / f"an4_{part}.fileids"
    if not transcription.is_file() or not fileids.is_file():
        raise AsrError(f"{src}: missing {transcription.name} or {fileids.name} under etc/")
    paths = [line.strip() for _, line in text_lines(fileids)]
    texts = {}
    for number, line in text_lines(transcription):
        match = LINE.match(line.strip())
        if not match:
            skip_line(transcription, number, f"expected 'TEXT (utt-id)', got {line!r}")
            continue
        texts[match.group(2)] = match.group(1)
    pairs = []
    for relative in paths:
        utt_id = Path(relative).name
        if utt_id not in texts:
            log.warning("skipped %s: %s has no line in %s", fileids, utt_id, transcription.name)
            continue
        pairs.append((relative, texts[utt_id]))
    return pairs


def prepare(src: Path) -> dict[str, list[Utterance]]:
    splits: dict[str, list[Utterance]] = {}
    for part in ("train", "test"):
        utterances, missing = [], []
        for relative, text in _read_list(src, part):
            audio = src / "wav" / f"{relative}.wav"
            if not audio.is_file():
                missing.append(str(audio))
                continue
            duration = readable_duration(audio)
            if duration is None:
                continue
            utterances.append(
                Utterance(
                    audio_filepath=str(audio.resolve()),
                    text=text,
                    duration=duration,
                    speaker=Path(relative).parent.name,
                    id=Path(relative).name,
                )
            )
        warn_missing(f"an4 {part}", missing)
        splits[part] = utterances
    speakers = sorted({u.speaker for u in splits["train"]})
    dev_speakers = set(speakers[DEV_SPEAKER_STRIDE - 1 :: DEV_SPEAKER_STRIDE])
    test_speakers: set[str] = set()
    if not splits["test"]:
        test_speakers = set(speakers[TEST_SPEAKER_STRIDE - 1 :: TEST_SPEAKER_STRIDE]) - dev_speakers
        log.warning(
            "an4: no test audio here; testing on the %d training speakers %s instead",
            len(test_speakers),
            ", ".join(sorted(test_speakers)),
        )
    held_out = dev_speakers | test_speakers
    return {
        "train": [u for u in splits["train"] if u.speaker not in held_out],
        "dev": [u for u in splits["train"] if u.speaker in dev_speakers],
        "test": splits["test"] or [u for u in splits["train"] if u.speaker in test_speakers],
    }


def transcripts(src: Path) -> list[str]:
    """Every line of text in the training transcription, with audio here or not."""
    return [text for _, text in _read_list(src, "train")]
