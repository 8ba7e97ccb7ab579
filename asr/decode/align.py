"""Word spans from CTC log-probabilities by forced alignment (torchaudio's ``forced_align``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.data.text import Tokenizer


@dataclass(frozen=True)
class WordSpan:
    word: str  # the word as spelled in the aligned text
    start: int  # first output frame of its first token
    end: int  # one past the last output frame of its last token


def align_words(log_probs: torch.Tensor, text: str, tokenizer: Tokenizer) -> list[WordSpan]:
    """Force-align normalised ``text`` to ``log_probs: (T, V)``; one span per word.

    Works with characters (a space token separates words) and BPE pieces (a piece
    starting with a space, i.e. ``\u2581``, starts a word). Returns an empty list when
    the text is empty or cannot fit in ``T`` frames.
    """
    if not text.strip():
        return []
    targets = tokenizer.encode(text)  # (L,)
    try:
        labels, scores = AF.forced_align(log_probs[None].float(), targets[None], blank=tokenizer.blank_id)
    except RuntimeError:  # more labels (with repeats) than frames
        return []
    token_spans = AF.merge_tokens(labels[0], scores[0].exp(), blank=tokenizer.blank_id)
    words: list[WordSpan] = []
    word_open = False
    for span, token_id in zip(token_spans, targets.tolist()):
        piece = tokenizer.token_text(token_id)
        if piece.startswith(" "):
            word_open = False
        letters = piece.strip()
        if not letters:
            continue
        if word_open:
            last = words[-1]
            words[-1] = WordSpan(last.word + letters, last.start, span.end)
        else:
            words.append(WordSpan(letters, span.start, span.end))
            word_open = True
    return words
