"""One loader for every kind of model inference can run: a torch packaged model or an ONNX export."""

from __future__ import annotations

from pathlib import Path

from asr.inference.onnx import load_onnx_model, onnx_export_config
from asr.model.checkpoint import PackagedModel, load_model


def load_inference_model(path: str | Path | None = None, threads: int | None = None) -> PackagedModel:
    """An ONNX export (a folder written by :func:`asr.inference.onnx.export_onnx`, or one of its
    ``.onnx`` files) run by onnxruntime with ``threads`` intra-op threads (default: torch's);
    otherwise a torch packaged model, a file or experiment directory (None: the shipped English
    model), as :func:`asr.model.checkpoint.load_model` loads it."""
    if path is not None and onnx_export_config(path) is not None:
        return load_onnx_model(path, threads=threads)
    return load_model(path)
