"""Audio file -> text (and word timings) with a packaged model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from asr.align import align_words
from asr.audio import load_audio
from asr.checkpoint import PackagedModel
from asr.decode import GreedyDecoder, Hypothesis


@dataclass(frozen=True)
class Word:
    word: str  # the word as decoded
    start: float  # seconds from the start of the file
    end: float  # seconds from the start of the file


@dataclass
class Transcript:
    file: str  # the audio file as given
    text: str  # the best hypothesis
    words: list[Word] = field(default_factory=list)  # timings, when asked for
    alternatives: list[Hypothesis] = field(default_factory=list)  # n-best list (best first), when n > 1

    def to_json(self) -> dict:
        row = {"file": self.file, "text": self.text, "words": [w.__dict__ for w in self.words]}
        if len(self.alternatives) > 1:
            row["alternatives"] = [{"text": h.text, "score": round(h.score, 4)} for h in self.alternatives]
        return row


def frame_seconds(model: PackagedModel) -> float:
    """Duration of one output frame: the feature hop times the front end's subsampling."""
    features = model.network.feature_config
    return features.hop_length / features.sample_rate * model.network.config.subsampling


def transcribe_file(model: PackagedModel, path: str | Path, decoder=None, timestamps: bool = False) -> Transcript:
    """Transcribe one file (greedily unless ``decoder`` is given); ``timestamps`` adds word
    timings from a forced alignment of the decoded text to the model's frames.

    Raises :class:`asr.errors.AudioError` naming a file that cannot be read.
    """
    decoder = decoder or GreedyDecoder(model.tokenizer)
    waveform = load_audio(path, model.sample_rate)  # (num_samples,)
    with torch.inference_mode():
        features = model.log_mel(waveform).unsqueeze(0)  # (1, T, F)
        log_probs, out_lengths = model.network(features, torch.tensor([features.shape[1]]))
    hypotheses = decoder.decode(log_probs, out_lengths)[0]
    transcript = Transcript(str(path), hypotheses[0].text, alternatives=hypotheses)
    if timestamps:
        step = frame_seconds(model)
        spans = align_words(log_probs[0, : int(out_lengths[0])], transcript.text, model.tokenizer)
        transcript.words = [Word(s.word, round(s.start * step, 3), round(s.end * step, 3)) for s in spans]
    return transcript
