"""Audio file -> text with a packaged model."""

from __future__ import annotations

from pathlib import Path

import torch

from asr.audio import load_audio
from asr.checkpoint import PackagedModel
from asr.decode import greedy_decode


def transcribe_file(model: PackagedModel, path: str | Path) -> str:
    """Greedy transcript of one file; raises :class:`asr.errors.AudioError` naming a bad file."""
    waveform = load_audio(path, model.sample_rate)  # (num_samples,)
    with torch.inference_mode():
        features = model.log_mel(waveform).unsqueeze(0)  # (1, T, F)
        lengths = torch.tensor([features.shape[1]])
        log_probs, out_lengths = model.network(features, lengths)
    return greedy_decode(log_probs, out_lengths, model.tokenizer)[0]
