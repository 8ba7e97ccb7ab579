"""Export a trained model with its decoder files into one folder that can ship (e.g. inside the package).

The folder holds ``model.pt`` and copies of the LM and lexicon its stored decoder
settings name, referred to by relative paths, so the folder can move anywhere.
Weights can be stored in half precision: they are cast back to float32 on load.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from asr.model.checkpoint import MODEL_FILENAME, atomic_save, resolve_model_path, safe_load

DECODER_FILES = ("lm", "lexicon")  # decoder settings that name files


def export_model(model: str | Path, out: str | Path, half: bool = False) -> Path:
    """Write ``out/model.pt`` (float16 weights when ``half``) and its decoder files; returns the model path."""
    source = resolve_model_path(model)
    data = safe_load(source)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if half:
        data["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    settings = copy_decoder_files(data.get("decoder"), source.parent, out)
    if settings:
        data["decoder"] = settings
    target = out / MODEL_FILENAME
    atomic_save(data, target)
    return target


def copy_decoder_files(settings: dict | None, folder: Path, out: Path) -> dict:
    """Decoder ``settings`` whose LM and lexicon (paths relative to ``folder`` unless absolute)
    are copied into ``out``, and named there by their file names alone."""
    settings = dict(settings or {})
    for key in DECODER_FILES:
        if settings.get(key):
            path = Path(settings[key])
            path = path if path.is_absolute() else folder / path
            if not (out / path.name).exists() or not (out / path.name).samefile(path):
                shutil.copyfile(path, out / path.name)
            settings[key] = path.name
    return settings
