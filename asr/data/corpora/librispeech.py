"""LibriSpeech: ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` and ``.flac``.

Every subset folder found (``dev-clean``, ``test-other``, ``train-clean-100``, ...,
also mini LibriSpeech's ``dev-clean-2``) becomes a manifest named after it, and
``train`` combines every ``train-*`` subset present (train-clean-100 alone, or
all 960 hours). Transcript lines read ``<speaker>-<chapter>-<n> TEXT``; the
speaker id is the speaker folder's name. Each subset is a separate archive at
OpenSLR (resource 12); they all unpack into one ``LibriSpeech/`` folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from asr.data.corpora.common import readable_duration, skip_line, text_lines, warn_missing
from asr.data.dataset import Utterance
from asr.utils.errors import AsrError
from asr.utils.progress import progress

log = logging.getLogger(__name__)

DOWNLOAD_URL = None  # one archive per subset: see download_urls
MIRROR = "https://www.openslr.org/resources/12"
SUBSETS = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
)
DEFAULT_SUBSETS = ("dev-clean", "test-clean", "train-clean-100")  # about 6.7 GB of archives, 110 hours


def download_urls(subsets: list[str] | tuple[str, ...] = DEFAULT_SUBSETS, mirror: str = MIRROR) -> list[str]:
    """Archive addresses of ``subsets`` (``<mirror>/<subset>.tar.gz``)."""
    unknown = [name for name in subsets if name not in SUBSETS]
    if unknown:
        raise AsrError(f"unknown LibriSpeech subset(s) {', '.join(unknown)} (known: {', '.join(SUBSETS)})")
    return [f"{mirror.rstrip('/')}/{name}.tar.gz" for name in subsets]


def _root(src: Path) -> Path:
    return src / "LibriSpeech" if (src / "LibriSpeech").is_dir() else src


def subset_folders(src: Path) -> list[Path]:
    """Subset folders under ``src`` (or ``src/LibriSpeech``): those holding ``*/*/*.trans.txt``."""
    root = _root(src)
    return [
        folder
        for folder in sorted(root.iterdir())
        if folder.is_dir() and next(folder.glob("*/*/*.trans.txt"), None) is not None
    ]


def _read_transcripts(path: Path) -> list[tuple[str, str]]:
    """(utterance id, text) pairs of one ``.trans.txt``; a malformed line is skipped with a warning."""
    chapter = path.name.removesuffix(".trans.txt")
    pairs = []
    for number, line in text_lines(path):
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or not fields[0].startswith(chapter + "-"):
            skip_line(path, number, f"expected '<speaker>-<chapter>-<n> TEXT', got {line.strip()[:80]!r}")
            continue
        pairs.append((fields[0], fields[1].strip()))
    return pairs


def read_subset(folder: Path) -> list[Utterance]:
    """Every transcribed utterance of one subset folder that has readable audio."""
    utterances, missing = [], []
    for transcript in progress(sorted(folder.glob("*/*/*.trans.txt")), desc=folder.name, unit="chapter", leave=False):
        speaker = transcript.parent.parent.name
        for utt_id, text in _read_transcripts(transcript):
            audio = transcript.parent / f"{utt_id}.flac"
            if not audio.is_file():
                missing.append(str(audio))
                continue
            duration = readable_duration(audio)
            if duration is not None:
                utterances.append(Utterance(str(audio.resolve()), text, duration, speaker, utt_id))
    warn_missing(f"librispeech {folder.name}", missing)
    return utterances


def prepare(src: Path) -> dict[str, list[Utterance]]:
    folders = subset_folders(src)
    if not folders:
        raise AsrError(
            f"{src}: no LibriSpeech subset here (expected LibriSpeech/<subset>/<speaker>/<chapter>/*.trans.txt)"
        )
    splits = {folder.name: read_subset(folder) for folder in folders}
    training = [name for name in splits if name.startswith("train")]
    if training:
        splits["train"] = [utt for name in training for utt in splits[name]]
        log.info("librispeech: train.jsonl combines %s", ", ".join(training))
    return splits
