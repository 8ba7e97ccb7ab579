"""What a training run keeps on disk so that no work is lost: ``last.pt`` and per-epoch snapshots.

``last.pt`` holds the full training state (weights, optimizer, scheduler, loss
scaler, counters, history, the position in the epoch's batches, every
process' random generators and the training extensions' states), written
atomically every N optimizer steps and at each epoch's end. A run killed at any
moment resumes from it with ``--resume``; with the same seed and number of
processes it ends with the same weights as a run that was never stopped.

``checkpoints/epoch-NNNN.pt`` are packaged models (loadable like ``model.pt``)
of the last and the best epochs, for averaging (:mod:`asr.train.averaging`).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import torch

from asr.model.checkpoint import atomic_save, safe_load
from asr.utils.errors import AsrError

log = logging.getLogger(__name__)

STATE_FORMAT = "asr-train-state-3"
# Before training extensions (asr.train.extensions), the speaker adversary and the word cuts had keys
# of their own; such a state is read as the extensions' states.
FORMAT_BEFORE_EXTENSIONS = "asr-train-state-2"
STATE_FILENAME = "last.pt"
SNAPSHOT_FOLDER = "checkpoints"


def random_states(device: str) -> dict[str, Any]:
    """This process' generators: Python's, torch's CPU one and, on CUDA, the device's."""
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.startswith("cuda") else None,
    }


def restore_random_states(states: dict[str, Any], device: str) -> None:
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and device.startswith("cuda"):
        torch.cuda.set_rng_state(states["cuda"], device)


def save_state(state: dict[str, Any], exp_dir: Path) -> None:
    atomic_save({"format": STATE_FORMAT, **state}, exp_dir / STATE_FILENAME)


def load_state(exp_dir: Path) -> dict[str, Any]:
    """The training state in ``exp_dir/last.pt``, checked; temporary files a killed run left
    behind are removed."""
    for stale in exp_dir.glob(f".{STATE_FILENAME}.*.tmp"):
        log.info("removing %s, left by an interrupted write", stale)
        stale.unlink(missing_ok=True)
    path = exp_dir / STATE_FILENAME
    if not path.is_file():
        raise AsrError(f"{path}: nothing to resume from")
    state = safe_load(path)
    if isinstance(state, dict) and state.get("format") == FORMAT_BEFORE_EXTENSIONS:
        return _with_extension_states(state)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise AsrError(
            f"{path}: not a training state this version can resume (expected format {STATE_FORMAT!r}); "
            "start a new experiment folder"
        )
    return state


def _with_extension_states(state: dict[str, Any]) -> dict[str, Any]:
    """A state of :data:`FORMAT_BEFORE_EXTENSIONS` as this version writes it: the adversary's
    weights become the ``speaker_adversary`` extension's state, and the word cuts the
    ``word_crop`` one's where they count (any, mid-epoch: that version kept them, empty or unused,
    for every run from a manifest)."""
    state = dict(state)
    adversary, word_cuts = state.pop("adversary"), state.pop("word_cuts")
    state["extensions"] = {}
    if adversary is not None:
        state["extensions"]["speaker_adversary"] = adversary
    if word_cuts and not state["epoch_done"]:
        state["extensions"]["word_crop"] = word_cuts
    return state


def snapshot_path(exp_dir: Path, epoch: int) -> Path:
    return exp_dir / SNAPSHOT_FOLDER / f"epoch-{epoch:04d}.pt"


def save_snapshot(packaged: dict[str, Any], exp_dir: Path, epoch: int, history: list[dict], keep: int) -> None:
    """Write epoch ``epoch``'s packaged model, then delete snapshots that are neither among the
    ``keep`` latest nor the ``keep`` best by (dev WER, dev loss) in ``history``."""
    atomic_save(packaged, snapshot_path(exp_dir, epoch))
    epochs = [record["epoch"] for record in history]
    best = sorted(history, key=lambda r: (r["dev_wer"], r["dev_loss"], -r["epoch"]))[:keep]
    wanted = set(epochs[-keep:]) | {record["epoch"] for record in best}
    for path in (exp_dir / SNAPSHOT_FOLDER).glob("epoch-*.pt"):
        number = path.stem.split("-", 1)[1]
        if number.isdigit() and int(number) not in wanted:
            path.unlink(missing_ok=True)
