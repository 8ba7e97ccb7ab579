"""CSTR VCTK Corpus 0.80: ``VCTK-Corpus/wav48/<spk>/<spk>_<nnn>.wav`` with ``txt/<spk>/<spk>_<nnn>.txt``.

Speakers are held out whole, so every test figure is on voices never heard in
training: of the speakers with audio, sorted by name, every tenth (from the first)
is a test speaker and every tenth from the sixth a dev speaker. A copy with fewer
than :data:`MIN_SPEAKERS_TO_TRAIN` speakers (a partial download, such as one
speaker) is all test. The sample rate is read from each file, never from the
folder name ``wav48``. Transcripts are mixed case with punctuation, and are
normalised like every other transcript.
"""

from __future__ import annotations

from pathlib import Path

from asr.data.corpora.common import readable_duration, text_lines, warn_missing
from asr.data.dataset import Utterance
from asr.utils.errors import AsrError

DOWNLOAD_URL = None  # the corpus is published on a page that asks to accept its licence; use --src
MIN_SPEAKERS_TO_TRAIN = 3  # fewer speakers than this: every clip is test (an unseen speaker)


def _root(src: Path) -> Path:
    root = src / "VCTK-Corpus" if (src / "VCTK-Corpus").is_dir() else src
    if not (root / "txt").is_dir() or not (root / "wav48").is_dir():
        raise AsrError(f"{src}: expected VCTK-Corpus/txt/ and VCTK-Corpus/wav48/")
    return root


def split_speakers(speakers: list[str]) -> dict[str, set[str]]:
    """Speaker names -> {"train", "dev", "test"} sets (see the module docstring)."""
    ordered = sorted(speakers)
    if len(ordered) < MIN_SPEAKERS_TO_TRAIN:
        return {"train": set(), "dev": set(), "test": set(ordered)}
    test = set(ordered[0::10])
    dev = set(ordered[5::10]) - test
    return {"train": set(ordered) - test - dev, "dev": dev, "test": test}


def prepare(src: Path) -> dict[str, list[Utterance]]:
    root = _root(src)
    utterances, missing = [], []
    for text_file in sorted((root / "txt").glob("*/*.txt")):
        speaker, clip_id = text_file.parent.name, text_file.stem
        audio = root / "wav48" / speaker / f"{clip_id}.wav"
        if not audio.is_file():
            missing.append(str(audio))
            continue
        text = " ".join(line.strip() for _, line in text_lines(text_file))
        duration = readable_duration(audio)
        if text and duration is not None:
            utterances.append(Utterance(str(audio.resolve()), text, duration, speaker, clip_id))
    warn_missing("vctk", missing)
    groups = split_speakers(sorted({u.speaker for u in utterances}))
    return {split: [u for u in utterances if u.speaker in names] for split, names in groups.items()}
