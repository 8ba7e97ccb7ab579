"""Text normalisation shared by training and scoring, and the character tokenizer.

Normalisation, applied to every transcript and every hypothesis before scoring:

- Unicode is decomposed and accents are stripped (``café`` -> ``cafe``);
  curly apostrophes become ``'``.
- Digit strings become English words (``42`` -> ``forty two``, ``3.5`` ->
  ``three point five``, ``1st`` -> ``first``); ``%`` -> ``percent``, ``&`` -> ``and``.
- Hyphens, slashes and other punctuation separate words; apostrophes inside
  words are kept (``don't``), apostrophes at word edges (quotes) are removed.
- Everything is lower case; runs of spaces collapse to one.

After this, text holds only ``a-z``, ``'`` and single spaces, so the
character tokenizer covers every normalised transcript.
"""

from __future__ import annotations

import re
import unicodedata

import torch
from num2words import num2words

BLANK = "<blank>"
CHARACTERS = tuple(" 'abcdefghijklmnopqrstuvwxyz")

_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NOT_ALLOWED = re.compile(r"[^a-z' ]+")
_EDGE_APOSTROPHES = re.compile(r"(?<![a-z])'+|'+(?![a-z])")
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at "}


def _number_to_words(match: re.Match) -> str:
    return " " + num2words(match.group(0)).replace("-", " ").replace(",", "") + " "


def _ordinal_to_words(match: re.Match) -> str:
    return " " + num2words(int(match.group(1)), to="ordinal").replace("-", " ").replace(",", "") + " "


def normalize_text(text: str) -> str:
    """Return ``text`` in the toolkit's canonical form (see the module docstring)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'").lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = _ORDINAL.sub(_ordinal_to_words, text)
    text = _NUMBER.sub(_number_to_words, text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = _NOT_ALLOWED.sub(" ", text)
    text = _EDGE_APOSTROPHES.sub("", text)
    return " ".join(text.split())


class CharTokenizer:
    """Characters <-> ids, with the CTC blank at id 0.

    ``vocabulary[0]`` is the blank; the rest are single characters.
    """

    def __init__(self, vocabulary: tuple[str, ...] | list[str] = (BLANK, *CHARACTERS)):
        vocabulary = tuple(vocabulary)
        if not vocabulary or vocabulary[0] != BLANK:
            raise ValueError(f"vocabulary must start with {BLANK}")
        self.vocabulary = vocabulary
        self.blank_id = 0
        self._index = {token: i for i, token in enumerate(vocabulary)}

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> torch.Tensor:
        """Normalised text -> ids ``(L,)``; a character outside the vocabulary raises ValueError."""
        try:
            return torch.tensor([self._index[ch] for ch in text], dtype=torch.long)
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the vocabulary (text: {text!r})") from None

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Ids -> text, skipping blanks (no CTC collapsing here; see asr.decode)."""
        return "".join(self.vocabulary[i] for i in (ids.tolist() if torch.is_tensor(ids) else ids) if i != self.blank_id)
