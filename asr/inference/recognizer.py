"""A model together with its decoder: the object behind ``asr.load_model()`` and ``asr transcribe``.

The decoder is built once from the settings stored with the model (for the shipped English
model: beam search with its word LM and lexicon, weights tuned on its dev set), so the
Python API and the command line give the same text for the same file.
"""

from __future__ import annotations

from pathlib import Path

from asr.decode.ctc import DecoderConfig, build_decoder
from asr.inference.loading import load_inference_model
from asr.inference.transcribe import Transcript, transcribe_file
from asr.model.checkpoint import PackagedModel


class Recognizer:
    """``Recognizer.load(path).transcribe("a.wav")``: text, segments and word times of a file."""

    def __init__(self, model: PackagedModel, **decoder_options):
        """``decoder_options``: :class:`asr.decode.ctc.DecoderConfig` fields that replace the
        model's stored settings (``kind="greedy"``, ``lm=...``, ``beam_size=...``); None keeps one."""
        self.model = model
        self.decoder_config: DecoderConfig = model.decoder_config(**decoder_options)
        self.decoder = build_decoder(self.decoder_config, model.tokenizer)

    @classmethod
    def load(cls, path: str | Path | None = None, threads: int | None = None, **decoder_options) -> Recognizer:
        """The model at ``path``: a ``model.pt``, an experiment folder or an ONNX export (run by
        onnxruntime with ``threads`` threads); None: the English model that ships with asr."""
        return cls(load_inference_model(path, threads=threads), **decoder_options)

    @property
    def path(self) -> Path:
        return self.model.path

    def transcribe(
        self, path: str | Path, word_timestamps: bool = True, progress: bool = False, feature_map=None
    ) -> Transcript:
        """Transcribe one audio file of any length and format soundfile reads. ``word_timestamps``:
        word start and end times from a forced alignment (the text is the same without them).
        ``feature_map``: see :func:`asr.inference.transcribe.transcribe_file`."""
        return transcribe_file(
            self.model, path, self.decoder, timestamps=word_timestamps, progress=progress, feature_map=feature_map
        )
