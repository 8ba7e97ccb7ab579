"""Streaming recognition: audio in as it arrives, partial transcripts out, a final one at the end.

:class:`StreamingRecognizer` takes chunks of samples of any size at any rate. soxr's streaming
resampler brings them to the model's rate, :class:`~asr.features.streaming.StreamingLogMel`
computes the log-mel frames whose windows are complete, and
:class:`~asr.model.streaming.StreamingNetwork` runs them through the unidirectional network,
keeping each LSTM layer's state and holding back only the model's ``lookahead_frames``. Every
output frame equals the whole-file network's (up to float rounding), so:

- a *partial* result is greedy CTC over the frames so far: it only grows, because a frame, once
  out, never changes;
- the *final* result is the decoder's best hypothesis over all frames: with the default greedy
  decoder the offline greedy text; a beam decoder (LM, lexicon) may revise the partial.

A bidirectional model is refused (:func:`asr.model.streaming.check_streamable`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr
import torch

from asr.audio.blocks import read_blocks
from asr.audio.stream import read_stream
from asr.features.streaming import StreamingLogMel
from asr.model.checkpoint import PackagedModel
from asr.model.streaming import StreamingNetwork, check_streamable
from asr.utils.errors import AsrError


@dataclass(frozen=True)
class StreamingResult:
    text: str  # partial: greedy CTC over the frames so far; final: the decoder's best over all frames
    final: bool  # whether this is the stream's last result
    seconds: float  # audio fed so far, in seconds


class StreamingRecognizer:
    """One utterance (or one unbroken recording): :meth:`accept` chunks, then :meth:`finish` once."""

    def __init__(
        self,
        model: PackagedModel,
        sample_rate: int | None = None,
        decoder=None,
        feature_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        """``sample_rate``: the rate of the audio to come (None: the model's). ``decoder``: decodes
        all frames for the final result (None: greedy, which keeps no frames). ``feature_map``:
        applied to each new block of features ``(T, F) -> (T, F)`` frame by frame (e.g. a speaker's
        normalisation, :func:`asr.speakers.normalization.for_one_speaker`)."""
        check_streamable(model.network)
        self.model = model
        self.sample_rate = sample_rate or model.sample_rate
        self.resampler = None
        if self.sample_rate != model.sample_rate:
            self.resampler = soxr.ResampleStream(self.sample_rate, model.sample_rate, 1, dtype="float32")
        self.features = StreamingLogMel(model.network.feature_config)
        self.network = StreamingNetwork(model.network)
        self.decoder = decoder
        self.feature_map = feature_map
        self.emissions: list[torch.Tensor] = []  # every frame's log-probabilities (T', V), for the decoder
        self.tokens: list[int] = []  # greedy: the best token of each run of frames, blanks left out
        self.last_token: int | None = None  # greedy: the last frame's best token (a repeat across chunks merges)
        self.text = ""  # the greedy text so far
        self.received = 0  # samples fed, at self.sample_rate

    def accept(self, samples: torch.Tensor | np.ndarray) -> StreamingResult:
        """Feed ``samples: (n,)`` (mono, float in [-1, 1], at ``sample_rate``) -> the partial result."""
        samples = torch.as_tensor(samples, dtype=torch.float32)
        self.received += len(samples)
        if self.resampler is not None:
            samples = torch.from_numpy(self.resampler.resample_chunk(samples.numpy()))
        self._feed(self.features.accept(samples))
        return StreamingResult(self.text, False, self.received / self.sample_rate)

    def finish(self) -> StreamingResult:
        """The end of the audio: the last frames, then the final result."""
        if self.resampler is not None:  # the samples the resampler held back
            tail = self.resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            self._feed(self.features.accept(torch.from_numpy(tail)))
        self._feed(self.features.finish())
        self._frames(self.network.finish())
        text = self.text
        if self.decoder is not None and self.emissions:
            log_probs = torch.cat(self.emissions)  # (T', V)
            text = self.decoder.decode(log_probs.unsqueeze(0), torch.tensor([len(log_probs)]))[0][0].text
        return StreamingResult(text, True, self.received / self.sample_rate)

    def _feed(self, features: torch.Tensor) -> None:
        """New feature frames ``(T, F)`` through the feature map and the network."""
        if self.feature_map is not None and len(features):
            features = self.feature_map(features)
        self._frames(self.network.accept(features))

    def _frames(self, log_probs: torch.Tensor) -> None:
        """New output frames ``(T', V)``: kept for the decoder, and the greedy text extended."""
        if not len(log_probs):
            return
        if self.decoder is not None:
            self.emissions.append(log_probs)
        best = torch.unique_consecutive(log_probs.argmax(-1)).tolist()
        if best[0] == self.last_token:
            best = best[1:]
        self.last_token = best[-1] if best else self.last_token
        new = [token for token in best if token != self.model.tokenizer.blank_id]
        if new:
            self.tokens += new
            self.text = " ".join(self.model.tokenizer.decode(self.tokens).split())


def stream_results(recognizer: StreamingRecognizer, blocks: Iterable[torch.Tensor]) -> Iterator[StreamingResult]:
    """Feed ``blocks`` to ``recognizer``: a partial result each time the text changes, then the final one."""
    shown = ""
    for block in blocks:
        partial = recognizer.accept(block)
        if partial.text != shown:
            shown = partial.text
            yield partial
    yield recognizer.finish()


def transcribe_stream(
    model: PackagedModel,
    source: str | Path | BinaryIO,
    raw_rate: int | None = None,
    block_seconds: float = 0.1,
    decoder=None,
) -> Iterator[StreamingResult]:
    """Partial results, then the final one, for an audio file read block by block (``source`` a path),
    or for a byte stream (``"-"``: stdin): a WAV file, or raw 16-bit mono PCM at ``raw_rate`` Hz.
    ``decoder``: for the final result (None: greedy). Raises :class:`asr.utils.errors.AsrError`
    for a bidirectional model, unreadable audio, or ``raw_rate`` with a file."""
    check_streamable(model.network)
    if source == "-" or not isinstance(source, (str, Path)):
        audio = read_stream(sys.stdin.buffer if source == "-" else source, raw_rate, block_seconds)
        return stream_results(StreamingRecognizer(model, audio.sample_rate, decoder), audio.blocks)
    if raw_rate is not None:
        raise AsrError(f"{source}: raw PCM is read from a stream only (stdin: -)")
    blocks = read_blocks(source, model.sample_rate, block_seconds)
    return stream_results(StreamingRecognizer(model, decoder=decoder), blocks)


def print_stream(results: Iterable[StreamingResult], format: str = "txt") -> None:
    """Show ``results`` as they come. ``"json"``: one line per result on stdout (``{text, final,
    seconds}``). ``"txt"``: the final text on stdout; each partial on stderr, redrawn in place on a
    terminal, else one ``partial 1.20s: text`` line each (a log keeps them all)."""
    redraw = sys.stderr.isatty()
    for result in results:
        if format == "json":
            line = {"text": result.text, "final": result.final, "seconds": round(result.seconds, 3)}
            print(json.dumps(line, ensure_ascii=False), flush=True)
        elif result.final:
            if redraw:
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            print(result.text, flush=True)
        elif redraw:
            print(f"\r\033[K{result.text}", end="", file=sys.stderr, flush=True)
        else:
            print(f"partial {result.seconds:.2f}s: {result.text}", file=sys.stderr, flush=True)
