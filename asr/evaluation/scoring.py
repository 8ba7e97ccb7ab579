"""Per-utterance scores from jiwer's alignments, and the tables a report is built from.

Every number here is a sum of per-utterance counts, so totals, per-speaker
rows and length bins all add up to the pooled figures of
:func:`asr.evaluation.metrics.error_counts` (WER = all errors / all reference words;
never a mean of per-utterance rates).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

from asr.evaluation.metrics import ErrorCounts

UNLABELLED_SPEAKER = "(none)"  # per-speaker key of utterances without a speaker, when others have one


@dataclass
class ScoredUtterance:
    key: str  # utterance id (or file stem)
    reference: str  # normalised reference
    hypothesis: str  # normalised hypothesis
    speaker: str | None  # speaker, when the manifest names one
    duration: float = 0.0  # seconds of audio
    audio: str = ""  # the audio file, for the report's player ("" when not known)
    offset: float = 0.0  # where the utterance starts in ``audio``, seconds


@dataclass(frozen=True)
class AlignedWord:
    op: str  # "C" correct, "S" substitution, "D" deletion, "I" insertion
    reference: str  # the reference word ("" for an insertion)
    hypothesis: str  # the hypothesis word ("" for a deletion)


@dataclass(frozen=True)
class UtteranceScore:
    key: str  # utterance id
    speaker: str | None  # speaker, when known
    reference: str  # normalised reference (non-empty)
    hypothesis: str  # normalised hypothesis (may be empty)
    duration: float  # seconds of audio
    alignment: tuple[AlignedWord, ...]  # word-level alignment, in order
    char_errors: int  # character substitutions + deletions + insertions (spaces count)
    num_chars: int  # reference characters (spaces count)
    audio: str = ""  # the audio file ("" when not known)
    offset: float = 0.0  # where the utterance starts in ``audio``, seconds

    def _count(self, op: str) -> int:
        return sum(word.op == op for word in self.alignment)

    @property
    def hits(self) -> int:
        return self._count("C")

    @property
    def substitutions(self) -> int:
        return self._count("S")

    @property
    def deletions(self) -> int:
        return self._count("D")

    @property
    def insertions(self) -> int:
        return self._count("I")

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def num_words(self) -> int:
        return self.hits + self.substitutions + self.deletions

    @property
    def wer(self) -> float:
        return self.errors / self.num_words


_OPS = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}


def _aligned_words(chunks, ref: list[str], hyp: list[str]) -> tuple[AlignedWord, ...]:
    words = []
    for chunk in chunks:
        op = _OPS[chunk.type]
        refs = ref[chunk.ref_start_idx : chunk.ref_end_idx]
        hyps = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
        if op == "D":
            words += [AlignedWord(op, r, "") for r in refs]
        elif op == "I":
            words += [AlignedWord(op, "", h) for h in hyps]
        else:  # equal and substitute chunks pair words one to one
            words += [AlignedWord(op, r, h) for r, h in zip(refs, hyps)]
    return tuple(words)


def score_utterances(utterances: Sequence[ScoredUtterance]) -> list[UtteranceScore]:
    """Align every utterance with jiwer (words and characters); references must be non-empty."""
    if not utterances:
        return []
    empty = [u.key for u in utterances if not u.reference.split()]
    if empty:
        raise ValueError(
            f"empty reference for {len(empty)} utterance(s) (first: {empty[0]}); filter them before scoring"
        )
    references = [u.reference for u in utterances]
    hypotheses = [u.hypothesis for u in utterances]
    words = jiwer.process_words(references, hypotheses)
    chars = jiwer.process_characters(references, hypotheses)
    scores = []
    for i, utt in enumerate(utterances):
        char_errors = sum(
            max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
            for c in chars.alignments[i]
            if c.type != "equal"
        )
        scores.append(
            UtteranceScore(
                key=utt.key,
                speaker=utt.speaker,
                reference=utt.reference,
                hypothesis=utt.hypothesis,
                duration=utt.duration,
                alignment=_aligned_words(words.alignments[i], words.references[i], words.hypotheses[i]),
                char_errors=char_errors,
                num_chars=len(chars.references[i]),
                audio=utt.audio,
                offset=utt.offset,
            )
        )
    return scores


def pooled_counts(scores: Sequence[UtteranceScore]) -> ErrorCounts:
    """The pooled :class:`ErrorCounts` of a set of scored utterances (sums, then one division)."""
    if not scores:
        raise ValueError("nothing to score: no utterances")
    words = sum(s.num_words for s in scores)
    return ErrorCounts(
        wer=sum(s.errors for s in scores) / words,
        cer=sum(s.char_errors for s in scores) / sum(s.num_chars for s in scores),
        substitutions=sum(s.substitutions for s in scores),
        deletions=sum(s.deletions for s in scores),
        insertions=sum(s.insertions for s in scores),
        hits=sum(s.hits for s in scores),
        num_words=words,
        num_utterances=len(scores),
        sentence_error_rate=sum(s.errors > 0 for s in scores) / len(scores),
    )


def per_speaker(scores: Sequence[UtteranceScore]) -> dict[str, dict]:
    """``{speaker: {wer, cer, num_words, substitutions, deletions, insertions, num_utterances}}``,
    sorted by speaker; empty when no utterance names a speaker."""
    if not any(s.speaker for s in scores):
        return {}
    groups: dict[str, list[UtteranceScore]] = defaultdict(list)
    for score in scores:
        groups[score.speaker or UNLABELLED_SPEAKER].append(score)
    table = {}
    for speaker in sorted(groups):
        counts = pooled_counts(groups[speaker])
        table[speaker] = {
            "wer": counts.wer,
            "cer": counts.cer,
            "num_words": counts.num_words,
            "substitutions": counts.substitutions,
            "deletions": counts.deletions,
            "insertions": counts.insertions,
            "num_utterances": counts.num_utterances,
        }
    return table


@dataclass(frozen=True)
class Confusions:
    substitutions: list[tuple[tuple[str, str], int]]  # ((reference word, hypothesis word), count), most frequent first
    deletions: list[tuple[str, int]]  # (deleted reference word, count)
    insertions: list[tuple[str, int]]  # (inserted hypothesis word, count)


def confusions(scores: Sequence[UtteranceScore], top: int = 10) -> Confusions:
    """The ``top`` most frequent substitution pairs, deleted words and inserted words (ties by word)."""
    subs, dels, ins = Counter(), Counter(), Counter()
    for score in scores:
        for word in score.alignment:
            if word.op == "S":
                subs[(word.reference, word.hypothesis)] += 1
            elif word.op == "D":
                dels[word.reference] += 1
            elif word.op == "I":
                ins[word.hypothesis] += 1

    def most(counter: Counter) -> list:
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:top]

    return Confusions(most(subs), most(dels), most(ins))


@dataclass(frozen=True)
class LengthBin:
    label: str  # e.g. "3-5 words" or "0.4-0.6 s"
    wer: float  # pooled WER of the bin
    num_utterances: int  # utterances in the bin
    num_words: int  # reference words in the bin


def wer_by_length(scores: Sequence[UtteranceScore], max_bins: int = 6) -> tuple[str, list[LengthBin]]:
    """Pooled WER in up to ``max_bins`` bins of similar utterance counts, by reference length in
    words; by duration when every reference has the same number of words (e.g. isolated words).
    Returns the unit ("words" or "seconds") and the bins, shortest first."""
    if not scores:
        return "words", []
    by_words = len({s.num_words for s in scores}) > 1
    length = (lambda s: s.num_words) if by_words else (lambda s: s.duration)
    ordered = sorted(scores, key=length)
    bins: list[list[UtteranceScore]] = []
    for i, score in enumerate(ordered):
        # a new bin at each quantile boundary, but equal lengths never split across bins
        at_boundary = i * max_bins // len(ordered) >= len(bins)
        if not bins or (at_boundary and length(score) != length(bins[-1][-1])):
            bins.append([])
        bins[-1].append(score)
    result = []
    for group in bins:
        low, high = length(group[0]), length(group[-1])
        if by_words:
            label = f"{low} words" if low == high else f"{low}-{high} words"
        else:
            label = f"{low:.2f}-{high:.2f} s"
        counts = pooled_counts(group)
        result.append(LengthBin(label, counts.wer, counts.num_utterances, counts.num_words))
    return ("words" if by_words else "seconds"), result
