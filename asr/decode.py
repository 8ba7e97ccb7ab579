"""CTC decoding. Greedy for now: best class per frame, merge repeats, drop blanks."""

from __future__ import annotations

import torch

from asr.text import Tokenizer


def greedy_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor, tokenizer: Tokenizer
) -> list[str]:
    """``log_probs: (B, T, V)``, ``lengths: (B,)`` -> one string per row.

    Frames past a row's length are ignored; consecutive repeats of a token
    merge unless a blank separates them; runs of spaces collapse. Works for any
    tokenizer: BPE pieces join into words at their ``\u2581`` word starts.
    """
    best = log_probs.argmax(-1)  # (B, T)
    texts = []
    for row, length in zip(best, lengths.tolist()):
        ids = torch.unique_consecutive(row[:length])
        texts.append(" ".join(tokenizer.decode(ids).split()))
    return texts
