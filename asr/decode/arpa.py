"""Backoff n-gram LMs in ARPA form: read, interpolate, prune, restrict the vocabulary, write.

What ``asr lm mix`` and ``asr lm prune`` need, for LMs built elsewhere (a general-English model)
as well as by :mod:`asr.decode.lm`. Values are log10, as in the file. For an n-gram ``(h, w)`` the model's
probability is the listed one, or else ``bow(h) * p(w | h[1:])`` (recursively), and ``bow(h)`` is
1 (log 0) for a context that is not listed.

- :func:`interpolate` is linear interpolation, as SRILM's ``ngram -mix-lm``: the union of both
  models' n-grams, each with ``lambda p_a + (1 - lambda) p_b`` (both computed with backoff; a word
  outside one model's vocabulary has probability 0 there), and every context's backoff weight
  recomputed so that its distribution sums to one over the union of the vocabularies.
- :func:`prune` drops highest-order-first n-grams whose weighted log difference from their backoff
  estimate, ``p(h, w) |log p(w | h) - log(bow(h) p(w | h[1:]))|``, is below a threshold (Seymore and
  Rosenfeld's weighted-difference criterion), and recomputes the backoff weights.
- :func:`restrict_vocabulary` keeps the words a model can spell; a removed word's unigram mass
  goes to ``<unk>``, and every n-gram holding it is removed.

The unigram level is never pruned, so a pruned model still knows every word.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from asr.decode.ctc import is_arpa_text
from asr.utils.atomic import write_text_atomic
from asr.utils.errors import AsrError

NO_PROBABILITY = -99.0  # log10 probability of <s>, which is never predicted
UNK = "<unk>"
SENTENCE_START, SENTENCE_END = "<s>", "</s>"

NGram = tuple[str, ...]


@dataclass
class BackoffLM:
    """An ARPA model: ``probs[k]`` maps each (k+1)-gram to its log10 probability, ``backoffs[k]``
    each (k+1)-gram that is a context to its log10 backoff weight."""

    probs: list[dict[NGram, float]] = field(default_factory=list)
    backoffs: list[dict[NGram, float]] = field(default_factory=list)

    @property
    def order(self) -> int:
        return len(self.probs)

    @property
    def vocabulary(self) -> set[str]:
        return {ngram[0] for ngram in self.probs[0]}

    @property
    def words(self) -> set[str]:
        """The vocabulary without ``<s>``, ``</s>`` and ``<unk>``."""
        return self.vocabulary - {SENTENCE_START, SENTENCE_END, UNK}

    @property
    def ngram_counts(self) -> list[int]:
        """How many n-grams of each order, unigrams first."""
        return [len(table) for table in self.probs]

    def logprob(self, ngram: NGram) -> float:
        """log10 p(ngram[-1] | ngram[:-1]) with backoff (histories longer than the order are cut)."""
        ngram = ngram[-self.order :]
        table = self.probs[len(ngram) - 1]
        if ngram in table:
            return table[ngram]
        if len(ngram) == 1:
            return self.probs[0].get((UNK,), NO_PROBABILITY)
        return self.backoffs[len(ngram) - 2].get(ngram[:-1], 0.0) + self.logprob(ngram[1:])


def check_arpa(path: str | Path) -> None:
    """An AsrError naming ``path`` unless it is an ARPA text file (checked without reading it all)."""
    if not Path(path).is_file():
        raise AsrError(f"{path}: no such file")
    if not is_arpa_text(path):
        raise AsrError(
            f"{path}: not an ARPA language model (no \\data\\ header; a KenLM binary or compressed "
            "file must be turned back into ARPA text)"
        )


def read_arpa(path: str | Path) -> BackoffLM:
    """Parse an ARPA file (words separated by spaces or tabs); an AsrError names a file that is not one."""
    check_arpa(path)
    path = Path(path)
    model = BackoffLM()
    order = 0
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                line = line.strip()
                if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
                    continue
                if line.startswith("\\") and line.endswith("-grams:"):
                    order = int(line[1 : -len("-grams:")])
                    while model.order < order:
                        model.probs.append({})
                        model.backoffs.append({})
                    continue
                if not order:
                    continue  # text before \data\
                fields = line.split()
                if len(fields) not in (order + 1, order + 2):
                    raise AsrError(f"{path}:{number}: expected a {order}-gram line, got {line[:80]!r}")
                ngram = tuple(fields[1 : order + 1])
                model.probs[order - 1][ngram] = float(fields[0])
                if len(fields) == order + 2 and float(fields[-1]) != 0.0:
                    model.backoffs[order - 1][ngram] = float(fields[-1])
    except (OSError, UnicodeDecodeError) as err:
        raise AsrError(f"{path}: cannot read ARPA file ({err})") from None
    except ValueError as err:
        raise AsrError(f"{path}: not an ARPA file ({err})") from None
    if not model.probs or not model.probs[0]:
        raise AsrError(f"{path}: no \\1-grams: section; not an ARPA file")
    return model


def _arpa_lines(model: BackoffLM) -> Iterator[str]:
    yield "\\data\\"
    for k, table in enumerate(model.probs):
        yield f"ngram {k + 1}={len(table)}"
    for k, table in enumerate(model.probs):
        yield ""
        yield f"\\{k + 1}-grams:"
        backoffs = model.backoffs[k] if k + 1 < model.order else {}
        for ngram in sorted(table):
            bow = backoffs.get(ngram)
            tail = f"\t{bow:.6f}" if bow is not None else ""
            yield f"{table[ngram]:.6f}\t{' '.join(ngram)}{tail}"
    yield ""
    yield "\\end\\"


def write_arpa(model: BackoffLM, path: str | Path) -> Path:
    """Write ``model`` as ARPA, atomically."""
    write_text_atomic(path, "\n".join(_arpa_lines(model)) + "\n")
    return Path(path)


def _recompute_backoffs(model: BackoffLM) -> None:
    """Every context's backoff weight from its listed continuations, so that each conditional
    distribution sums to one: ``bow(h) = (1 - sum p(w|h)) / (Z - sum p(w|h[1:]))`` over the listed w,
    where Z is the lower-order distribution's own total (1 above the unigrams; for the unigrams their
    actual sum, which rounding in a file can put a little above or below 1). A context whose listed
    words take all the mass gets log10 bow -99 (nothing is left to back off to)."""
    unigram_total = sum(10**p for g, p in model.probs[0].items() if g != (SENTENCE_START,))
    for k in range(1, model.order):
        listed: dict[NGram, list[NGram]] = {}
        for ngram in model.probs[k]:
            listed.setdefault(ngram[:-1], []).append(ngram)
        total = unigram_total if k == 1 else 1.0
        backoffs = {}
        for context, ngrams in listed.items():
            if context not in model.probs[k - 1]:
                continue  # an orphan n-gram (its context is not listed): it keeps no weight
            explicit = sum(10 ** model.probs[k][g] for g in ngrams)
            lower = sum(10 ** model.logprob(g[1:]) for g in ngrams)
            left, lower_left = 1.0 - explicit, total - lower
            if left <= 1e-9 or lower_left <= 1e-9:
                backoffs[context] = NO_PROBABILITY
            else:
                backoffs[context] = math.log10(left / lower_left)
        model.backoffs[k - 1] = backoffs


def _probability(model: BackoffLM, ngram: NGram, vocabulary: set[str]) -> float:
    """p(ngram[-1] | ngram[:-1]); 0 for a word outside the model's vocabulary (not its <unk>
    mass, which would be counted once per such word and leave the mixture unnormalised)."""
    return 10 ** model.logprob(ngram) if ngram[-1] in vocabulary else 0.0


def interpolate(a: BackoffLM, b: BackoffLM, weight_a: float) -> BackoffLM:
    """``weight_a * a + (1 - weight_a) * b`` over the union of their n-grams (order: the larger)."""
    if not 0.0 <= weight_a <= 1.0:
        raise AsrError(f"mixing weight must be in [0, 1], not {weight_a}")
    order = max(a.order, b.order)
    vocabularies = (a.vocabulary, b.vocabulary)
    mixed = BackoffLM([{} for _ in range(order)], [{} for _ in range(order)])
    for k in range(order):
        ngrams = set(a.probs[k] if k < a.order else ()) | set(b.probs[k] if k < b.order else ())
        for ngram in ngrams:
            if ngram == (SENTENCE_START,):
                mixed.probs[k][ngram] = NO_PROBABILITY
                continue
            p = weight_a * _probability(a, ngram, vocabularies[0]) + (1 - weight_a) * _probability(
                b, ngram, vocabularies[1]
            )
            mixed.probs[k][ngram] = math.log10(p) if p > 0 else NO_PROBABILITY
    _recompute_backoffs(mixed)
    return mixed


def _history_probability(model: BackoffLM, history: NGram) -> float:
    """p(history) by the chain rule over the model (from the first word's unigram)."""
    logp = 0.0
    for i in range(len(history)):
        if history[: i + 1] == (SENTENCE_START,):
            continue
        logp += model.logprob(history[: i + 1])
    return 10**logp


def prune(model: BackoffLM, threshold: float) -> BackoffLM:
    """Drop n-grams above the unigrams whose weighted difference (module docstring) is below
    ``threshold``, highest order first, keeping every prefix of a kept n-gram; then recompute
    the backoff weights."""
    pruned = BackoffLM([dict(t) for t in model.probs], [dict(t) for t in model.backoffs])
    for k in range(model.order - 1, 0, -1):
        needed = {g[:-1] for g in pruned.probs[k + 1]} if k + 1 < pruned.order else set()
        history_p: dict[NGram, float] = {}
        keep = {}
        for ngram, logp in pruned.probs[k].items():
            if ngram in needed:
                keep[ngram] = logp
                continue
            history = ngram[:-1]
            if history not in history_p:
                history_p[history] = _history_probability(model, history)
            backoff_estimate = model.backoffs[k - 1].get(history, 0.0) + model.logprob(ngram[1:])
            weighted = history_p[history] * 10**logp * abs(logp - backoff_estimate) * math.log(10)
            if weighted >= threshold:
                keep[ngram] = logp
        pruned.probs[k] = keep
    _recompute_backoffs(pruned)
    return pruned


def restrict_vocabulary(model: BackoffLM, keep: Callable[[str], bool]) -> BackoffLM:
    """Only the words for which ``keep`` is true (and <s>, </s>, <unk>); the unigram mass of the
    others is added to ``<unk>``'s, and every higher n-gram holding one of them is dropped."""
    special = {SENTENCE_START, SENTENCE_END, UNK}
    kept_words = {w for w in model.vocabulary if w in special or keep(w)}
    unigrams = {g: p for g, p in model.probs[0].items() if g[0] in kept_words}
    removed_mass = sum(10**p for g, p in model.probs[0].items() if g[0] not in kept_words)
    unk = 10 ** unigrams.get((UNK,), NO_PROBABILITY) if (UNK,) in unigrams else 0.0
    if removed_mass + unk > 0:
        unigrams[(UNK,)] = math.log10(removed_mass + unk)
    restricted = BackoffLM([unigrams], [{g: b for g, b in model.backoffs[0].items() if g[0] in kept_words}])
    for k in range(1, model.order):
        restricted.probs.append({g: p for g, p in model.probs[k].items() if all(w in kept_words for w in g)})
        restricted.backoffs.append({g: b for g, b in model.backoffs[k].items() if all(w in kept_words for w in g)})
    _recompute_backoffs(restricted)
    return restricted


def most_probable_words(model: BackoffLM, count: int, among: set[str] | None = None) -> set[str]:
    """The ``count`` words (``<s>``, ``</s>`` and ``<unk>`` aside; only those ``among``, if given) of
    highest unigram probability; ties go to the alphabetically first, so the choice does not depend
    on the file's order. (Restricting a model keeps the unigram probabilities of the words it keeps,
    so ranking before or after :func:`restrict_vocabulary` chooses the same words.)"""
    candidates = model.words if among is None else model.words & among
    ranked = sorted(candidates, key=lambda word: (-model.probs[0][(word,)], word))
    return set(ranked[:count])


def truncate_order(model: BackoffLM, order: int) -> BackoffLM:
    """The model's first ``order`` levels as a model of that order (highest-order backoffs dropped)."""
    if order >= model.order:
        return model
    return BackoffLM([dict(t) for t in model.probs[:order]], [dict(t) for t in model.backoffs[: order - 1]] + [{}])


def perplexity(model: BackoffLM, sentences: list[list[str]]) -> float:
    """Per-word perplexity (``</s>`` counted as a word, as SRILM and KenLM do)."""
    total, count = 0.0, 0
    for words in sentences:
        context = [SENTENCE_START]
        for word in [*words, SENTENCE_END]:
            total += model.logprob(tuple(context + [word])[-model.order :])
            context.append(word)
            count += 1
    return 10 ** (-total / count)


@dataclass(frozen=True)
class MixTuning:
    perplexities: list[tuple[float, float]]  # (weight of A, perplexity of that mixture on the text), grid order
    weight: float  # the weight with the lowest perplexity (the first of equals)
    perplexity: float  # that perplexity
    model: BackoffLM  # the mixture at that weight
    words: int  # words of the text
    unknown: int  # of them, outside both models' vocabularies (scored as <unk>)


def tune_mixture(a: BackoffLM, b: BackoffLM, sentences: list[list[str]], weights: list[float]) -> MixTuning:
    """Interpolate ``a`` and ``b`` at each weight of ``a`` and keep the mixture with the lowest
    perplexity on ``sentences`` (word lists; never the test set)."""
    perplexities, best = [], None
    for weight in weights:
        mixed = interpolate(a, b, weight)
        perplexities.append((weight, perplexity(mixed, sentences)))
        if best is None or perplexities[-1][1] < best[1]:
            best = (weight, perplexities[-1][1], mixed)
    known = a.vocabulary | b.vocabulary
    return MixTuning(
        perplexities, *best, sum(len(s) for s in sentences), sum(w not in known for s in sentences for w in s)
    )


def mixture_table(tuning: MixTuning, name_a: str) -> str:
    """The perplexity at each weight of A (named ``name_a``) as a Markdown table."""
    rows = [f"| {weight:g} | {ppl:.2f} |" for weight, ppl in tuning.perplexities]
    return "\n".join([f"| weight of {name_a} | perplexity |", "|---:|---:|", *rows])
