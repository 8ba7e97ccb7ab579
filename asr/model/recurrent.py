"""A stack of recurrent layers that is exact on padded batches.

``torch.nn.LSTM(bidirectional=True)`` run on a padded batch lets the backward
direction read the padding before an utterance's last frame, so an utterance's
output would depend on the batch it is in. ``pack_padded_sequence`` fixes that
but halves training throughput on CPU (``benchmarks/training.py``). Here each
direction is its own single-layer RNN and the backward one reads every utterance
reversed *within its length*, which puts the padding after the real frames for
both directions: the padded kernels' speed with packing's exactness.
"""

from __future__ import annotations

import torch
from torch import nn

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def reversal_index(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """``lengths: (B,)`` -> ``(B, frames)`` time indices that reverse each sequence within its
    length and leave the padding in place; applying it twice is the identity."""
    steps = torch.arange(frames, device=lengths.device).unsqueeze(0)  # (1, T): broadcast, so that an exported
    lengths = lengths.unsqueeze(1)  # (B, 1)                              graph keeps the batch dynamic
    return torch.where(steps < lengths, lengths - 1 - steps, steps)  # (B, T)


class RecurrentStack(nn.Module):
    """``(B, T, input_size)`` + ``lengths (B,)`` -> ``(B, T, hidden_size * directions)``.

    Outputs at padded positions (``t >= length``) are unspecified.
    """

    def __init__(
        self, cell: str, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool, dropout: float
    ):
        super().__init__()
        directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            nn.ModuleList(
                CELLS[cell](input_size if depth == 0 else hidden_size * directions, hidden_size, batch_first=True)
                for _ in range(directions)
            )
            for depth in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)  # between layers, as nn.LSTM's ``dropout``
        self.bidirectional = bidirectional
        self.output_size = hidden_size * directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        index = reversal_index(lengths, x.shape[1]).unsqueeze(-1) if self.bidirectional else None  # (B, T, 1)
        for depth, directions in enumerate(self.layers):
            if depth > 0:
                x = self.dropout(x)
            outputs = [directions[0](x)[0]]  # forward direction: padding comes after the real frames
            if self.bidirectional:
                reversed_x = x.gather(1, index.expand(-1, -1, x.shape[2]))
                backward = directions[1](reversed_x)[0]
                outputs.append(backward.gather(1, index.expand(-1, -1, backward.shape[2])))
            x = torch.cat(outputs, dim=-1)
        return x
