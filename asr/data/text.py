"""Text normalisation shared by training and scoring, and the tokenizers (characters or BPE).

Normalisation, applied to every transcript and every hypothesis before scoring:

- Unicode is decomposed and accents are stripped (``café`` -> ``cafe``); Latin
  letters that do not decompose are spelled out after case folding (``Straße`` ->
  ``strasse``, ``København`` -> ``kobenhavn``, ``Æsop`` -> ``aesop``, ``Łódź`` ->
  ``lodz``; see ``_LATIN_LETTERS``); curly and modifier apostrophes become ``'``.
- Digit strings become English words (``42`` -> ``forty two``, ``3.5`` ->
  ``three point five``, ``1st`` -> ``first``); ``%`` -> ``percent``, ``&`` -> ``and``.
- Hyphens, slashes and other punctuation separate words; apostrophes inside
  words are kept (``don't``), apostrophes at word edges (quotes) are removed.
- Everything is case-folded to lower case; runs of spaces collapse to one.

After this, text holds only ``a-z``, ``'`` and single spaces, so the
character tokenizer covers every normalised transcript.

Two tokenizers share one interface (``encode``, ``decode``, ``token_text``,
``vocabulary``, ``blank_id``, ``len()``, ``state()``), both with the CTC blank at
id 0: :class:`CharTokenizer` (letters, apostrophe, space) and
:class:`BpeTokenizer` (sentencepiece byte-pair pieces trained on the training
transcripts; its model travels inside the packaged model as bytes).
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from asr.utils.errors import AsrError

BLANK = "<blank>"
CHARACTERS = tuple(" 'abcdefghijklmnopqrstuvwxyz")
TOKENIZER_KINDS = ("char", "bpe")


@dataclass(frozen=True)
class TokenizerConfig:
    kind: str = "char"  # "char" (letters, apostrophe, space) or "bpe" (sentencepiece pieces)
    vocab_size: int = 256  # bpe only: pieces to learn from the training transcripts (a soft limit:
    # fewer when the transcripts hold fewer); the model outputs one more class, the CTC blank

    def __post_init__(self):
        if self.kind not in TOKENIZER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(TOKENIZER_KINDS)}, not {self.kind!r}")
        if self.vocab_size < len(CHARACTERS) + 1:
            raise ValueError(
                f"vocab_size must be at least {len(CHARACTERS) + 1} (every character, "
                "the word-start mark and <unk> are pieces)"
            )


_ORDINAL = re.compile(r"(\d+)(st|nd|rd|th)\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NOT_ALLOWED = re.compile(r"[^a-z' ]+")
_EDGE_APOSTROPHES = re.compile(r"(?<![a-z])'+|'+(?![a-z])")
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at "}
# Latin letters (case-folded) that NFKD does not turn into a-z plus marks: every other letter of
# Latin-1 Supplement and Latin Extended-A does (ſ folds to s; listed so the table is the whole set).
_LATIN_LETTERS = str.maketrans(
    {
        "æ": "ae",
        "ð": "d",
        "ø": "o",
        "þ": "th",
        "đ": "d",
        "ħ": "h",
        "ı": "i",
        "ĸ": "k",
        "ŀ": "l",
        "ł": "l",
        "ŋ": "ng",
        "œ": "oe",
        "ſ": "s",
        "ŧ": "t",
    }
)


def _number_to_words(match: re.Match) -> str:
    from num2words import num2words  # imported when needed: `asr transcribe` starts 18 ms sooner

    return " " + num2words(match.group(0)).replace("-", " ").replace(",", "") + " "


def _ordinal_to_words(match: re.Match) -> str:
    from num2words import num2words

    return " " + num2words(int(match.group(1)), to="ordinal").replace("-", " ").replace(",", "") + " "


def normalize_text(text: str) -> str:
    """Return ``text`` in the toolkit's canonical form (see the module docstring)."""
    for _ in range(2):  # fold and spell out before NFKD (which splits ŀ into l + middle dot), then
        # again after it (which can give capitals and whole letters: ㎁ -> nA, ǽ -> æ + accent)
        text = unicodedata.normalize("NFKD", text.casefold().translate(_LATIN_LETTERS))  # ß -> ss by casefold
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'").replace("`", "'")
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
        """Ids -> text, skipping blanks (no CTC collapsing here; see asr.decode.ctc)."""
        return "".join(
            self.vocabulary[i] for i in (ids.tolist() if torch.is_tensor(ids) else ids) if i != self.blank_id
        )

    def token_text(self, token_id: int) -> str:
        """The text one token stands for (a space token is a word boundary)."""
        return self.vocabulary[token_id]

    def state(self) -> dict[str, Any]:
        """Plain values that rebuild this tokenizer with :func:`tokenizer_from_state`."""
        return {"kind": "char"}


class BpeTokenizer:
    """sentencepiece BPE pieces <-> ids, with the CTC blank at id 0.

    Piece ``i`` of the sentencepiece model is id ``i + 1``; ``vocabulary[0]`` is the
    blank. A piece starting with ``"\u2581"`` begins a word. The model is built with
    identity normalisation: text is normalised by :func:`normalize_text` first.
    """

    def __init__(self, model_proto: bytes):
        import sentencepiece  # only BPE models need it

        self.model_proto = bytes(model_proto)
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)
        pieces = [self._processor.id_to_piece(i) for i in range(self._processor.get_piece_size())]
        self.vocabulary = (BLANK, *pieces)
        self.blank_id = 0

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BpeTokenizer:
        """Learn up to ``vocab_size`` pieces from normalised ``texts`` (deterministic).

        Every character of :data:`CHARACTERS` is a piece, so any normalised text encodes
        without an unknown piece.
        """
        texts = [text for text in texts if text]
        if not texts:
            raise AsrError("cannot train a BPE tokenizer: no transcript has any usable characters")
        import sentencepiece

        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts),
                model_writer=model,
                model_type="bpe",
                vocab_size=vocab_size,
                hard_vocab_limit=False,  # small corpora (yesno) have fewer pieces than asked
                character_coverage=1.0,
                required_chars="".join(ch for ch in CHARACTERS if ch != " "),
                normalization_rule_name="identity",
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                num_threads=1,  # the same pieces on every run and machine
                minloglevel=2,
            )
        except RuntimeError as err:  # sentencepiece reports bad settings this way
            raise AsrError(f"cannot train a BPE tokenizer: {str(err).splitlines()[0]}") from None
        return cls(model.getvalue())

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> torch.Tensor:
        """Normalised text -> ids ``(L,)``."""
        return torch.tensor([i + 1 for i in self._processor.encode(text)], dtype=torch.long)

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """Ids -> text, skipping blanks; word-initial pieces become spaces (no CTC collapsing here)."""
        ids = ids.tolist() if torch.is_tensor(ids) else ids
        return self._processor.decode([i - 1 for i in ids if i != self.blank_id])

    def token_text(self, token_id: int) -> str:
        """The text one piece stands for, a leading space marking a word start."""
        return self.vocabulary[token_id].replace("\u2581", " ")

    def state(self) -> dict[str, Any]:
        """Plain values (the model as a uint8 tensor) that rebuild this tokenizer."""
        return {"kind": "bpe", "model": torch.frombuffer(bytearray(self.model_proto), dtype=torch.uint8)}


Tokenizer = CharTokenizer | BpeTokenizer


def build_tokenizer(config: TokenizerConfig, transcripts: Iterable[str]) -> Tokenizer:
    """The tokenizer ``config`` asks for; BPE learns its pieces from the normalised ``transcripts``."""
    if config.kind == "bpe":
        return BpeTokenizer.train((normalize_text(text) for text in transcripts), config.vocab_size)
    return CharTokenizer()


def tokenizer_from_state(state: dict[str, Any], vocabulary: list[str]) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`state` and the packaged vocabulary (checked to agree)."""
    kind = state.get("kind")
    if kind == "char":
        return CharTokenizer(vocabulary)
    if kind == "bpe":
        model = state.get("model")
        if not torch.is_tensor(model) or model.dtype != torch.uint8:
            raise AsrError("the packaged BPE tokenizer has no model bytes")
        try:
            tokenizer = BpeTokenizer(model.numpy().tobytes())
        except RuntimeError:
            raise AsrError("the packaged BPE model is damaged (sentencepiece cannot parse it)") from None
        if list(tokenizer.vocabulary) != list(vocabulary):
            raise AsrError("the packaged BPE model does not match the packaged vocabulary")
        return tokenizer
    raise AsrError(f"unknown tokenizer kind {kind!r}")
