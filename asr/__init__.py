"""asr: a small CTC speech-recognition toolkit.

Public API, shaped like whisper's::

    import asr

    model = asr.load_model()                 # the English model that ships, or a path
    result = model.transcribe("speech.wav")  # the same decoder and text as `asr transcribe`
    print(result.text, result.words[0].start)
    summary = asr.evaluate("test.jsonl", "eval/")  # like `asr evaluate`: WER, reports in eval/
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"
__all__ = ["load_model", "evaluate", "__version__"]


def load_model(path: str | Path | None = None, **decoder_options):
    """A :class:`asr.inference.recognizer.Recognizer`: the packaged model at ``path`` (``model.pt``
    or an experiment folder; None: the English model that ships) with the decoder its stored
    settings name. ``decoder_options`` replace those settings (``kind="greedy"``, ``beam_size=10``,
    ``lm="words.arpa"``, ...)."""
    from asr.inference.recognizer import Recognizer

    return Recognizer.load(path, **decoder_options)


def evaluate(manifest: str | Path, out_dir: str | Path, model=None, progress: bool = False, **decoder_options) -> dict:
    """Decode and score a manifest as ``asr evaluate`` does: reports in ``out_dir`` (``summary.json``,
    ``report.md``, ``report.html``, ``hyp.jsonl``); returns the summary (``wer``, ``cer``, ...).
    ``model``: a path, a loaded :func:`load_model` result, or None for the model that ships."""
    from asr.evaluation.evaluate import evaluate as evaluate_manifest
    from asr.inference.recognizer import Recognizer

    recognizer = model if isinstance(model, Recognizer) else Recognizer.load(model, **decoder_options)
    config = recognizer.model.decoder_config(**decoder_options) if decoder_options else recognizer.decoder_config
    return evaluate_manifest(
        recognizer.model, manifest, out_dir, model_path=str(recognizer.path), progress=progress, decoder_config=config
    )
