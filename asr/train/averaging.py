"""Average the weights of several packaged models (checkpoint averaging, as in ESPnet/icefall).

Averaging the last or best few epochs' weights usually gives a model a little
better and steadier than any one of them. Floating-point tensors are averaged;
everything else (integer buffers, configs, vocabulary) is taken from the newest
model, and all models must have the same configuration and tensor shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asr.model.checkpoint import MODEL_FORMAT, safe_load
from asr.train.state import SNAPSHOT_FOLDER
from asr.utils.errors import AsrError


def select_snapshots(exp_dir: str | Path, last: int | None = None, best: int | None = None) -> list[Path]:
    """The ``last`` latest or the ``best`` best (by dev WER, then dev loss) epoch snapshots
    that training kept in ``exp_dir/checkpoints/``, oldest first."""
    if (last is None) == (best is None):
        raise AsrError("choose the snapshots with exactly one of --last N or --best N")
    wanted = last if last is not None else best
    if wanted < 1:
        raise AsrError(f"the number of models to average must be positive, not {wanted}")
    folder = Path(exp_dir) / SNAPSHOT_FOLDER
    snapshots = sorted(folder.glob("epoch-*.pt"))
    if not snapshots:
        raise AsrError(f"{folder}: no epoch snapshots (train with a version that keeps them)")
    if best is not None:
        scores = {}
        for path in snapshots:
            metadata = _load_packaged(path).get("metadata", {})
            scores[path] = (metadata.get("dev_wer", float("inf")), metadata.get("dev_loss", float("inf")))
        snapshots = sorted(sorted(snapshots, key=lambda p: scores[p])[:wanted])
    else:
        snapshots = snapshots[-wanted:]
    if len(snapshots) < wanted:
        raise AsrError(f"{folder}: {wanted} snapshots asked for, only {len(snapshots)} kept")
    return snapshots


def _load_packaged(path: Path) -> dict[str, Any]:
    data = safe_load(path)
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise AsrError(f"{path}: not an asr packaged model (expected format {MODEL_FORMAT!r})")
    return data


def average_models(paths: list[str | Path]) -> dict[str, Any]:
    """A packaged model whose weights are the mean of those in ``paths`` (the last is the template)."""
    if not paths:
        raise AsrError("no models to average")
    models = [_load_packaged(Path(p)) for p in paths]
    template = models[-1]
    for path, model in zip(paths, models):
        for field in ("model_config", "feature_config", "vocabulary"):
            if model[field] != template[field]:
                raise AsrError(
                    f"{path}: its {field} differs from {paths[-1]}'s; only models of one run can be averaged"
                )
        if model["state_dict"].keys() != template["state_dict"].keys() or any(
            model["state_dict"][k].shape != v.shape for k, v in template["state_dict"].items()
        ):
            raise AsrError(f"{path}: its tensors differ from {paths[-1]}'s")
    averaged = {}
    for name, value in template["state_dict"].items():
        if value.is_floating_point():
            averaged[name] = torch.stack([m["state_dict"][name].double() for m in models]).mean(0).to(value.dtype)
        else:
            averaged[name] = value
    metadata = {k: v for k, v in template.get("metadata", {}).items() if k not in ("epoch", "dev_wer", "dev_loss")}
    metadata["averaged_from"] = [str(p) for p in paths]
    metadata["averaged_epochs"] = [m.get("metadata", {}).get("epoch") for m in models]
    return {**template, "state_dict": averaged, "metadata": metadata}
