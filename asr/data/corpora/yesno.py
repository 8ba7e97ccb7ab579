"""Kaldi/OpenSLR SLR1 "yesno": ``waves_yesno/1_0_1_1_0_0_1_0.wav``, 1 = yes, 0 = no.

Split like Kaldi's recipe: the first 31 files in sorted name order train, the other 29 test.
"""

from __future__ import annotations

from pathlib import Path

from asr.data.corpora.common import readable_duration
from asr.data.dataset import Utterance

DOWNLOAD_URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
NUM_TRAIN = 31


def prepare(src: Path) -> dict[str, list[Utterance]]:
    folder = src / "waves_yesno" if (src / "waves_yesno").is_dir() else src
    files = sorted(p for p in folder.glob("*.wav") if set(p.stem.split("_")) <= {"0", "1"})
    utterances = [
        Utterance(
            audio_filepath=str(path.resolve()),
            text=" ".join("yes" if bit == "1" else "no" for bit in path.stem.split("_")),
            duration=duration,
            speaker="yesno",
            id=path.stem,
        )
        for path in files
        if (duration := readable_duration(path)) is not None
    ]
    return {"train": utterances[:NUM_TRAIN], "test": utterances[NUM_TRAIN:]}
