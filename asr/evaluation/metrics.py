"""Word and character error rates with jiwer, pooled over a whole set (never averaged per utterance)."""

from __future__ import annotations

from dataclasses import dataclass

import jiwer


@dataclass(frozen=True)
class ErrorCounts:
    wer: float  # (S + D + I) / reference words, pooled over all utterances
    cer: float  # the same over characters (spaces included)
    substitutions: int  # word substitutions
    deletions: int  # word deletions
    insertions: int  # word insertions
    hits: int  # words recognised correctly
    num_words: int  # reference words
    num_utterances: int  # utterances scored
    sentence_error_rate: float  # fraction of utterances with at least one word error


def error_counts(references: list[str], hypotheses: list[str]) -> ErrorCounts:
    """Score normalised texts. References must be non-empty strings (filter them before)."""
    if not references:
        raise ValueError("nothing to score: no utterances")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    words = jiwer.process_words(references, hypotheses)
    chars = jiwer.process_characters(references, hypotheses)
    num_words = words.hits + words.substitutions + words.deletions
    wrong_sentences = sum(r.split() != h.split() for r, h in zip(references, hypotheses))
    return ErrorCounts(
        wer=words.wer,
        cer=chars.cer,
        substitutions=words.substitutions,
        deletions=words.deletions,
        insertions=words.insertions,
        hits=words.hits,
        num_words=num_words,
        num_utterances=len(references),
        sentence_error_rate=wrong_sentences / len(references),
    )
