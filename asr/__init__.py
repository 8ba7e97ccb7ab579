"""asr: a small CTC speech-recognition toolkit.

Public API::

    from asr import load_model, transcribe_file
"""

__version__ = "0.1.0"


def load_model(path):
    """Load a packaged model (file or experiment directory); see :mod:`asr.model.checkpoint`."""
    from asr.model.checkpoint import load_model as _load

    return _load(path)


def transcribe_file(model, path):
    """Transcribe one audio file with a loaded model; returns the text."""
    from asr.inference.transcribe import transcribe_file as _transcribe

    return _transcribe(model, path)
