"""Free Spoken Digit Dataset: ``recordings/{digit}_{speaker}_{index}.wav``.

The corpus' own split: indices 0-4 test, 5-49 train. Indices 5-9 of the train
part form the dev set used for model selection, so training uses 10-49.
With ``holdout_speaker``, every clip of that speaker is the test set and the
other speakers provide train/dev by the same index rule (leave-one-speaker-out).
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.data.corpora.common import readable_duration
from asr.data.dataset import Utterance
from asr.utils.errors import AsrError

DOWNLOAD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)$")


def prepare(src: Path, holdout_speaker: str | None = None) -> dict[str, list[Utterance]]:
    folder = src / "recordings" if (src / "recordings").is_dir() else src
    splits: dict[str, list[Utterance]] = {"train": [], "dev": [], "test": []}
    speakers = set()
    for path in sorted(folder.glob("*.wav")):
        match = NAME.match(path.stem)
        if not match:
            continue
        digit, speaker, index = int(match.group(1)), match.group(2), int(match.group(3))
        speakers.add(speaker)
        duration = readable_duration(path)
        if duration is None:
            continue
        utt = Utterance(
            audio_filepath=str(path.resolve()),
            text=DIGITS[digit],
            duration=duration,
            speaker=speaker,
            id=path.stem,
        )
        if holdout_speaker is not None:
            split = "test" if speaker == holdout_speaker else ("dev" if 5 <= index <= 9 else "train")
            if split != "test" and index <= 4:
                split = "train"  # the official test indices of the seen speakers are training data here
        else:
            split = "test" if index <= 4 else ("dev" if index <= 9 else "train")
        splits[split].append(utt)
    if holdout_speaker is not None and holdout_speaker not in speakers:
        raise AsrError(f"{folder}: no speaker {holdout_speaker!r} (speakers: {', '.join(sorted(speakers))})")
    return splits
