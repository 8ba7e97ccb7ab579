"""Word spans from CTC log-probabilities by forced alignment (torchaudio's ``forced_align``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.text import CharTokenizer


@dataclass(frozen=True)
class WordSpan:
    word: str  # the word as spelled in the aligned text
    start: int  # first output frame of its first character
    end: int  # one past the last output frame of its last character


def align_words(log_probs: torch.Tensor, text: str, tokenizer: CharTokenizer) -> list[WordSpan]:
    """Force-align normalised ``text`` to ``log_probs: (T, V)``; one span per word.

    Returns an empty list when the text is empty or cannot fit in ``T`` frames.
    """
    if not text.strip():
        return []
    targets = tokenizer.encode(text)  # (L,)
    try:
        labels, scores = AF.forced_align(log_probs[None].float(), targets[None], blank=tokenizer.blank_id)
    except RuntimeError:  # more labels (with repeats) than frames
        return []
    token_spans = AF.merge_tokens(labels[0], scores[0].exp(), blank=tokenizer.blank_id)
    words, current = [], []
    for span, character in zip(token_spans, text):
        if character == " ":
            if current:
                words.append(current)
            current = []
        else:
            current.append((character, span))
    if current:
        words.append(current)
    return [
        WordSpan("".join(c for c, _ in word), word[0][1].start, word[-1][1].end) for word in words
    ]
