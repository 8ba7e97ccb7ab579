"""Word (or token) n-gram language models in ARPA format, with interpolated modified Kneser-Ney.

KenLM's ``lmplz`` is not on the package registries, so the toolkit estimates the
model itself, the way ``lmplz`` does (Chen & Goodman 1998; Heafield et al. 2013):

- *Adjusted counts*: the highest order keeps raw counts; a lower-order n-gram
  counts the distinct words seen to its left (its continuation count), except
  n-grams starting with ``<s>``, which have no left context and keep raw counts.
- *Discounts* per order from the counts-of-counts ``t1..t4`` of adjusted counts:
  ``Y = t1 / (t1 + 2 t2)``, ``D1 = 1 - 2Y t2/t1``, ``D2 = 2 - 3Y t3/t2``,
  ``D3+ = 3 - 4Y t4/t3``. As in lmplz (``CalculateDiscounts`` in
  ``lm/builder/adjust_counts.cc``), an order falls back to ``--discount_fallback``'s
  0.5, 1.0, 1.5, with a warning, only when ``t1``, ``t2`` or ``t3`` is zero or a
  discount ``D_k`` falls outside ``[0, k]``; ``t4 = 0`` is valid (``D3+ = 3``).
- *Interpolation*: ``p(w|h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w|h')`` with
  ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / a(h.)``; unigrams interpolate
  with the uniform distribution over the vocabulary, which gives ``<unk>`` (and
  words added with ``extra_vocabulary`` but never seen) their probability.

In the ARPA file, ``gamma(h)`` is the back-off weight of context ``h``; every listed
probability is the interpolated one. Distributions sum to one over the vocabulary
(every word, ``</s>`` and ``<unk>``), which the tests check.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asr.utils.errors import AsrError

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback defaults
NO_PROBABILITY = -99.0  # log10 probability written for <s>, which is never predicted

NGram = tuple[str, ...]


@dataclass(frozen=True)
class Discounts:
    d1: float  # discount of n-grams seen once
    d2: float  # discount of n-grams seen twice
    d3: float  # discount of n-grams seen three times or more

    def of(self, count: int) -> float:
        return self.d1 if count == 1 else self.d2 if count == 2 else self.d3


def discounts_from_counts_of_counts(t: Counter, order: int) -> Discounts:
    """Modified Kneser-Ney discounts from ``t[k]`` = number of n-grams with adjusted count ``k``."""
    t1, t2, t3, t4 = (t.get(k, 0) for k in (1, 2, 3, 4))
    if min(t1, t2, t3) > 0:  # t4 = 0 is fine: it only makes D3+ = 3
        y = t1 / (t1 + 2 * t2)
        d = Discounts(1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
        if 0 <= d.d1 <= 1 and 0 <= d.d2 <= 2 and 0 <= d.d3 <= 3:
            return d
    log.warning(
        "order %d: counts of counts %s too sparse for Kneser-Ney discounts; using %s",
        order,
        [t1, t2, t3, t4],
        FALLBACK_DISCOUNTS,
    )
    return Discounts(*FALLBACK_DISCOUNTS)


def adjusted_counts(sentences: Iterable[list[str]], order: int) -> list[Counter]:
    """``counts[n-1][ngram]`` for n = 1..order: raw counts at the top order (and for
    n-grams starting with ``<s>``), continuation counts below."""
    raw = [Counter() for _ in range(order)]
    for words in sentences:
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                raw[n - 1][tuple(padded[i : i + n])] += 1
    counts = [Counter() for _ in range(order)]
    counts[order - 1] = raw[order - 1]
    for n in range(1, order):
        continuation = Counter(ngram[1:] for ngram in raw[n])  # distinct left extensions
        for ngram, count in raw[n - 1].items():
            counts[n - 1][ngram] = count if ngram[0] == BOS else continuation[ngram]
    del counts[0][(BOS,)]  # <s> is only ever a context
    return counts


class KneserNeyLM:
    """An interpolated modified Kneser-Ney n-gram model estimated from tokenised sentences."""

    def __init__(self, sentences: Iterable[list[str]], order: int, extra_vocabulary: Iterable[str] = ()):
        if order < 1:
            raise ValueError("order must be >= 1")
        self.order = order
        self.counts = adjusted_counts(sentences, order)
        if not self.counts[0]:
            raise AsrError("no text to estimate a language model from")
        seen = {ngram[0] for ngram in self.counts[0]}
        self.vocabulary = sorted(seen | (set(extra_vocabulary) - {BOS, EOS}) | {UNK})  # what can be predicted
        self.discounts = [
            discounts_from_counts_of_counts(Counter(c.values()), n + 1) for n, c in enumerate(self.counts)
        ]
        self.probabilities, self.backoffs = self._estimate()

    def _estimate(self) -> tuple[list[dict[NGram, float]], list[dict[NGram, float]]]:
        """Interpolated probabilities of every listed n-gram, and back-off weights of every context."""
        probabilities: list[dict[NGram, float]] = []
        backoffs: list[dict[NGram, float]] = []
        uniform = 1.0 / len(self.vocabulary)
        for n, counts in enumerate(self.counts, start=1):
            discounts = self.discounts[n - 1]
            totals: dict[NGram, int] = defaultdict(int)
            mass: dict[NGram, float] = defaultdict(float)  # discounted mass per context
            for ngram, count in counts.items():
                totals[ngram[:-1]] += count
                mass[ngram[:-1]] += discounts.of(count)
            gamma = {context: mass[context] / totals[context] for context in totals}
            lower = probabilities[-1] if probabilities else None
            current: dict[NGram, float] = {}
            for ngram, count in counts.items():
                context = ngram[:-1]
                backoff = uniform if lower is None else lower[ngram[1:]]
                current[ngram] = (count - discounts.of(count)) / totals[context] + gamma[context] * backoff
            if lower is None:
                for word in self.vocabulary:
                    current.setdefault((word,), gamma[()] * uniform)
            probabilities.append(current)
            backoffs.append(gamma)
        return probabilities, backoffs

    def probability(self, word: str, context: NGram = ()) -> float:
        """``p(word | context)`` by the ARPA back-off rule; unknown words score as ``<unk>``."""
        if word not in self.vocabulary:
            word = UNK
        context = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        weight = 1.0
        while True:
            ngram = (*context, word)
            found = self.probabilities[len(ngram) - 1].get(ngram)
            if found is not None:
                return weight * found
            weight *= self.backoffs[len(context)].get(context, 1.0) if context else 1.0
            context = context[1:]

    def write_arpa(self, path: str | Path) -> None:
        """Write the model as an ARPA file (log10 probabilities and back-off weights)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        unigrams = {**self.probabilities[0], (BOS,): None}
        tables = [unigrams, *self.probabilities[1:]]
        with path.open("w", encoding="utf-8") as out:
            out.write("\\data\\\n")
            for n, table in enumerate(tables, start=1):
                out.write(f"ngram {n}={len(table)}\n")
            for n, table in enumerate(tables, start=1):
                out.write(f"\n\\{n}-grams:\n")
                contexts = self.backoffs[n] if n < self.order else {}
                for ngram in sorted(table):
                    p = table[ngram]
                    logp = NO_PROBABILITY if p is None else math.log10(p)
                    line = f"{logp:.6f}\t{' '.join(ngram)}"
                    if n < self.order:
                        gamma = contexts.get(ngram)  # None: never a context; 0.0: a zero discount left no mass
                        line += (
                            "\t0" if gamma is None else f"\t{math.log10(gamma):.6f}" if gamma else f"\t{NO_PROBABILITY}"
                        )
                    out.write(line + "\n")
            out.write("\n\\end\\\n")


def read_sentences(path: str | Path) -> list[str]:
    """Sentences of a text file (one per line) or of a JSON-lines manifest (its ``text`` fields)."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: no such text file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise AsrError(f"{path}: not UTF-8 text ({err})") from None
    if path.suffix != ".jsonl":
        return lines
    texts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise AsrError(f"{path}, line {number}: invalid JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise AsrError(f"{path}, line {number}: expected a JSON object with a string 'text'")
        texts.append(row["text"])
    return texts


def normalized_sentences(paths: Iterable[str | Path]) -> list[str]:
    """The sentences of text files or manifests (:func:`read_sentences`), normalised like every
    transcript, empty ones left out; an AsrError when none is left."""
    from asr.data.text import normalize_text

    paths = list(paths)
    sentences = [normalize_text(line) for path in paths for line in read_sentences(path)]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise AsrError(f"{', '.join(map(str, paths))}: no usable sentences")
    return sentences


def arpa_vocabulary(path: str | Path) -> set[str]:
    """The unigrams of an ARPA file (read up to the end of the 1-gram section)."""
    path = Path(path)
    words, inside = set(), False
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                line = line.strip()
                if line == "\\1-grams:":
                    inside = True
                elif inside and line.startswith("\\"):
                    break
                elif inside and line:
                    words.add(line.split("\t")[1] if "\t" in line else line.split()[1])
    except (OSError, UnicodeDecodeError, IndexError) as err:
        raise AsrError(f"{path}: not a readable ARPA language model ({err})") from None
    if not words:
        raise AsrError(f"{path}: no 1-grams found; is it an ARPA language model?")
    return words


# --- lexicons: every word spelled in the acoustic model's tokens ---------------------------------

WORD_BOUNDARY = "|"  # the decoder's symbol for the space token (flashlight's silence token)


def token_symbols(tokenizer) -> list[str]:
    """The tokenizer's vocabulary as the beam decoder sees it: a character model's space
    becomes ``|``; BPE pieces stay as they are (``\u2581`` starts a word)."""
    return [WORD_BOUNDARY if token == " " else token for token in tokenizer.vocabulary]


def has_word_boundary(tokenizer) -> bool:
    """Whether words are separated by a token of their own (characters: yes; BPE: no)."""
    return " " in tokenizer.vocabulary


def spell(word: str, tokenizer) -> list[str] | None:
    """``word`` as decoder token symbols; None when it cannot be spelled. With characters the
    spelling ends in the word boundary ``|`` (the decoder appends a boundary frame to every
    utterance, so the last word, which the models never follow with a space, can end too);
    BPE pieces mark a word's start themselves. A word the tokens cannot spell as written is
    spelled lower-cased (LMs made elsewhere, such as LibriSpeech's, are upper case)."""
    symbols = token_symbols(tokenizer)
    try:
        ids = tokenizer.encode(word).tolist()
    except ValueError:
        try:
            ids = tokenizer.encode(word.lower()).tolist()
        except ValueError:
            return None
    if not ids:
        return None
    return [symbols[i] for i in ids] + ([WORD_BOUNDARY] if has_word_boundary(tokenizer) else [])


def lexicon_lines(words: Iterable[str], tokenizer) -> tuple[list[str], list[str]]:
    """``word<TAB>t o k e n s |`` lines for the spellable words (sorted; ``<s>``, ``</s>`` and
    ``<unk>`` left out), and the words that cannot be spelled."""
    lines, unspellable = [], []
    for word in sorted(set(words) - {BOS, EOS, UNK}):
        spelling = spell(word, tokenizer)
        if spelling is None:
            unspellable.append(word)
        else:
            lines.append(f"{word}\t{' '.join(spelling)}\n")
    return lines, unspellable


def write_lexicon(path: str | Path, words: Iterable[str], tokenizer) -> int:
    """Write ``word<TAB>t o k e n s |`` per spellable word (sorted); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines, unspellable = lexicon_lines(words, tokenizer)
    with path.open("w", encoding="utf-8") as out:
        out.writelines(lines)
    written = len(lines)
    if unspellable:
        log.warning(
            "%s: %d word(s) cannot be spelled with the model's tokens (first: %r)",
            path,
            len(unspellable),
            unspellable[0],
        )
    return written


@dataclass(frozen=True)
class BuiltLM:
    arpa: Path  # the ARPA file written
    lexicon: Path | None  # the lexicon written, if asked for
    sentences: int  # sentences read
    vocabulary: int  # predictable words (</s> and <unk> included)
    ngrams: list[int]  # n-grams listed per order
    excluded: int = 0  # sentences left out because they equal a transcript of the exclude files


def build_lm(
    text_files: list[str | Path],
    order: int,
    out: str | Path,
    units: str = "words",
    tokenizer=None,
    lexicon: str | Path | None = None,
    vocabulary_manifests: list[str | Path] = (),
    exclude: list[str | Path] = (),
) -> BuiltLM:
    """Estimate an n-gram model from normalised sentences and write it as ARPA.

    ``units="words"`` models words (for lexicon decoding; ``lexicon`` then gets the
    vocabulary spelled in ``tokenizer``'s tokens, with the words of
    ``vocabulary_manifests`` added). ``units="tokens"`` models the tokenizer's
    symbols, ``|`` between words (for lexicon-free decoding). Sentences equal, once normalised, to
    a transcript of ``exclude`` (text files or manifests: the set the LM weight is tuned on) are left
    out, so that tuning measures text the LM never read.
    """
    from asr.data.text import CharTokenizer, normalize_text

    if units not in ("words", "tokens"):
        raise AsrError(f"units must be 'words' or 'tokens', not {units!r}")
    if order < 2:
        raise AsrError(f"order {order}: the beam decoder's KenLM cannot load a unigram model; use order 2 or more")
    tokenizer = tokenizer or CharTokenizer()
    sentences = normalized_sentences(text_files)
    excluded_texts = set(normalized_sentences(exclude)) if exclude else set()
    kept = [s for s in sentences if s not in excluded_texts]
    if not kept:
        raise AsrError(
            f"{', '.join(map(str, text_files))}: every sentence is a transcript of {', '.join(map(str, exclude))} "
            "(left out): no text is left to estimate the LM from"
        )
    excluded, sentences = len(sentences) - len(kept), kept
    extra = {w for path in vocabulary_manifests for line in read_sentences(path) for w in normalize_text(line).split()}
    if units == "words":
        tokenised = [s.split() for s in sentences]
    else:
        symbols = token_symbols(tokenizer)
        tokenised = [[symbols[i] for i in tokenizer.encode(s).tolist()] for s in sentences]
        extra = set(symbols[1:])  # every token but the blank can be predicted
    model = KneserNeyLM(tokenised, order, extra_vocabulary=extra)
    model.write_arpa(out)
    lexicon_path = None
    if lexicon is not None:
        if units != "words":
            raise AsrError("a lexicon goes with a word LM (units='words')")
        lexicon_path = Path(lexicon)
        write_lexicon(lexicon_path, model.vocabulary, tokenizer)
    return BuiltLM(
        Path(out),
        lexicon_path,
        len(sentences),
        len(model.vocabulary),
        [len(p) + (n == 0) for n, p in enumerate(model.probabilities)],
        excluded,
    )
