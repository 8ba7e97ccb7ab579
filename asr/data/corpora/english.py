"""The default English model's corpus: LJ Speech, AN4, FSDD and VCTK together, plus text to synthesize.

``src`` holds the corpora in their own layouts as ``ljspeech/``, ``an4/``,
``fsdd/`` and, where present, ``vctk/`` (like ``../shared/data``). Each corpus keeps
its own held-out parts: LJ Speech whole chapters, AN4 and VCTK unseen speakers
(a one-speaker VCTK copy is all test), FSDD file indices 0-9. The dev set
pools their dev parts; each corpus' test part is its own split (``test_ljspeech``,
``test_an4``, ``test_fsdd``) so results are reported per test set.

Besides the manifests, :func:`text_sources` gives the text that speech synthesis
reads and the word LM learns from; no sentence of a held-out LJ Speech chapter and
no transcript of a held-out AN4 utterance is among it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from asr.data.corpora import an4, fsdd, ljspeech, vctk
from asr.data.dataset import Utterance
from asr.data.phrases import DIGITS, generate_phrases
from asr.data.text import normalize_text
from asr.utils.errors import AsrError

DOWNLOAD_URL = None  # assembled from the three corpora; download each one on its own
PARTS = {"ljspeech": ljspeech, "an4": an4, "fsdd": fsdd}
OPTIONAL_PARTS = {"vctk": vctk}  # used when ``src`` has them
REPEATABLE_PARTS = ("ljspeech", "an4")  # the real sentence-length speech that repeat_real lists again
GENERATED_PHRASES = 3000  # number/letter phrases in the synthesis and LM text
SYNTH_TEXT = {  # file written beside the manifests -> what it holds
    "synth_ljspeech.txt": "LJ Speech sentences outside the held-out chapters",
    "synth_an4.txt": "AN4 training transcripts of speakers not held out",
    "synth_phrases.txt": "generated digit strings, numbers, years and spelled words",
}


def prepare(src: Path, repeat_real: int = 1) -> dict[str, list[Utterance]]:
    """The pooled splits; with ``repeat_real`` N > 1, the LJ Speech and AN4 training clips are listed
    N times in train (copies' ids end in ``~2`` … ``~N``), so that the little real read speech weighs
    more against hours of synthesized speech. FSDD's thousands of short digit clips stay single."""
    if repeat_real < 1:
        raise AsrError(f"repeat_real must be at least 1, not {repeat_real}")
    missing = [name for name in PARTS if not (src / name).is_dir()]
    if missing:
        raise AsrError(f"{src}: expected the folders {', '.join(PARTS)} (missing: {', '.join(missing)})")
    splits: dict[str, list[Utterance]] = {"train": [], "dev": []}
    present = {name: module for name, module in OPTIONAL_PARTS.items() if (src / name).is_dir()}
    for name, module in {**PARTS, **present}.items():
        parts = module.prepare(src / name)
        splits["train"] += parts["train"]
        splits["dev"] += parts["dev"]
        if parts["test"]:
            splits[f"test_{name}"] = parts["test"]
        if name in REPEATABLE_PARTS:
            splits["train"] += [
                replace(u, id=f"{u.key}~{n}") for n in range(2, repeat_real + 1) for u in parts["train"]
            ]
    return splits


def held_out_chapters(splits: dict[str, list[Utterance]]) -> set[str]:
    """LJ Speech chapters with a clip in dev or test: none of their sentences is trained on."""
    return {ljspeech.chapter(u) for name, part in splits.items() if name != "train" for u in part if u.speaker == "LJ"}


def text_sources(src: Path, splits: dict[str, list[Utterance]], seed: int = 0) -> dict[str, list[str]]:
    """Normalised sentences for each :data:`SYNTH_TEXT` file (no held-out sentence, no duplicates)."""
    chapters = held_out_chapters(splits)
    trained_texts = {normalize_text(u.text) for u in splits["train"]}  # e.g. FSDD's digits: in every split
    held_out_texts = {normalize_text(u.text) for name, part in splits.items() if name != "train" for u in part}
    held_out_texts -= trained_texts
    lj = [t for clip_id, t in ljspeech.read_metadata(src / "ljspeech") if clip_id.split("-")[0] not in chapters]
    sources = {"synth_ljspeech.txt": lj, "synth_an4.txt": an4.transcripts(src / "an4")}
    vocabulary = sorted({w for t in lj for w in normalize_text(t).split()})
    sources["synth_phrases.txt"] = generate_phrases(GENERATED_PHRASES, vocabulary, seed) + DIGITS
    cleaned = {}
    for name, texts in sources.items():
        unique = dict.fromkeys(normalize_text(t) for t in texts)
        cleaned[name] = [t for t in unique if t and t not in held_out_texts]
    return cleaned


def lm_text(src: Path, splits: dict[str, list[Utterance]]) -> list[str]:
    """The word LM's text: every synthesis sentence plus the real training transcripts."""
    sources = text_sources(src, splits)
    return [t for texts in sources.values() for t in texts] + [normalize_text(u.text) for u in splits["train"]]
