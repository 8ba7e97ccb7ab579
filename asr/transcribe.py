"""Audio file -> text (and word timings) with a packaged model, for files of any length.

A file no longer than one segment is read whole and decoded in one piece. A longer one
is streamed: read in blocks (:mod:`asr.stream`), cut at pauses (:mod:`asr.segment`),
and its segments go through the network and the decoder in padded batches, so memory
stays bounded however long the recording is; word timings are relative to the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import torch
from tqdm import tqdm

from asr.align import align_words
from asr.audio import load_audio
from asr.checkpoint import PackagedModel
from asr.decode import GreedyDecoder, Hypothesis
from asr.segment import Segment, SegmenterConfig, split_at_pauses
from asr.stream import audio_info, read_blocks

PROGRESS_MIN_SECONDS = 60.0  # files at least this long get a progress bar (when asked for)


@dataclass(frozen=True)
class Word:
    word: str  # the word as decoded
    start: float  # seconds from the start of the file
    end: float  # seconds from the start of the file


@dataclass(frozen=True)
class SegmentText:
    start: float  # seconds from the start of the file
    end: float  # seconds from the start of the file
    text: str  # the best hypothesis for this stretch of audio


@dataclass(frozen=True)
class LongFormConfig:
    segmenter: SegmenterConfig = SegmenterConfig()  # where long files are cut
    batch_size: int = 16  # segments run through the network and the decoder together
    block_seconds: float = 30.0  # audio read from the file at a time


@dataclass
class Transcript:
    file: str  # the audio file as given
    text: str  # the best hypothesis
    words: list[Word] = field(default_factory=list)  # timings, when asked for
    alternatives: list[Hypothesis] = field(default_factory=list)  # n-best list (best first), when n > 1
    # and the file is one segment
    segments: list[SegmentText] = field(default_factory=list)  # the stretches the file was decoded in

    def to_json(self) -> dict:
        row = {"file": self.file, "text": self.text, "words": [w.__dict__ for w in self.words],
               "segments": [s.__dict__ for s in self.segments]}
        if len(self.alternatives) > 1:
            row["alternatives"] = [{"text": h.text, "score": round(h.score, 4)} for h in self.alternatives]
        return row


def frame_seconds(model: PackagedModel) -> float:
    """Duration of one output frame: the feature hop times the front end's subsampling."""
    features = model.network.feature_config
    return features.hop_length / features.sample_rate * model.network.config.subsampling


def transcribe_file(
    model: PackagedModel,
    path: str | Path,
    decoder=None,
    timestamps: bool = False,
    config: LongFormConfig = LongFormConfig(),
    progress: bool = False,
) -> Transcript:
    """Transcribe one file (greedily unless ``decoder`` is given); ``timestamps`` adds word
    timings from a forced alignment of each segment's text to the model's frames. ``progress``
    shows a bar of audio seconds done (stderr) for files of ``PROGRESS_MIN_SECONDS`` or more.

    Raises :class:`asr.errors.AudioError` naming a file that cannot be read.
    """
    decoder = decoder or GreedyDecoder(model.tokenizer)
    info = audio_info(path)
    if info.duration <= config.segmenter.max_seconds:  # one segment: read it whole
        segments: Iterable[Segment] = [Segment(0, load_audio(path, model.sample_rate))]
    else:
        blocks = read_blocks(path, model.sample_rate, config.block_seconds)
        segments = split_at_pauses(blocks, model.sample_rate, config.segmenter)
    texts, words, alternatives = [], [], []
    show = progress and info.duration >= PROGRESS_MIN_SECONDS
    with torch.inference_mode(), tqdm(total=round(info.duration, 1), unit="s", desc=Path(path).name,
                                      disable=not show, leave=False, mininterval=0.5) as bar:
        for batch in _batches(segments, config.batch_size):
            for segment, hypotheses, segment_words in _decode_batch(model, decoder, batch, timestamps):
                start = segment.start_seconds(model.sample_rate)
                end = start + len(segment.samples) / model.sample_rate
                texts.append(SegmentText(round(start, 3), round(end, 3), hypotheses[0].text))
                words += segment_words
                alternatives = hypotheses
                bar.update(round(min(end, info.duration) - bar.n, 1))
    text = " ".join(s.text for s in texts if s.text)
    return Transcript(str(path), text, words, alternatives if len(texts) == 1 else [], texts)


def _batches(segments: Iterable[Segment], size: int) -> Iterator[list[Segment]]:
    iterator = iter(segments)
    while batch := list(islice(iterator, size)):
        yield batch


def _decode_batch(model: PackagedModel, decoder, segments: list[Segment], timestamps: bool):
    """Run ``segments`` through the network as one padded batch and decode it; yields
    ``(segment, hypotheses, words)`` per segment, words timed from the start of the file."""
    features = [model.log_mel(s.samples) for s in segments]  # each (T_i, F)
    lengths = torch.tensor([f.shape[0] for f in features])  # (B,)
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)  # (B, T, F)
    log_probs, out_lengths = model.network(padded, lengths)  # (B, T', V), (B,)
    step = frame_seconds(model)
    for segment, hypotheses, row, length in zip(segments, decoder.decode(log_probs, out_lengths),
                                                log_probs, out_lengths.tolist()):
        words = []
        if timestamps:
            offset = segment.start_seconds(model.sample_rate)
            spans = align_words(row[:length], hypotheses[0].text, model.tokenizer)
            words = [Word(s.word, round(offset + s.start * step, 3), round(offset + s.end * step, 3)) for s in spans]
        yield segment, hypotheses, words
