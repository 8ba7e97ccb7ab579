"""Save and load packaged models and training checkpoints without pickled code.

Everything written here is tensors and plain Python values (dicts, lists,
strings, numbers), so it loads with ``torch.load(..., weights_only=True)``,
which refuses arbitrary pickled objects. Writes go to a temporary file in the
same folder and are renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from asr.data.text import Tokenizer, tokenizer_from_state
from asr.features.logmel import FeatureConfig, LogMel
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.utils.atomic import atomic_open
from asr.utils.config import dataclass_from_dict
from asr.utils.errors import AsrError

MODEL_FORMAT = "asr-model-1"
MODEL_FILENAME = "model.pt"
DEFAULT_MODEL = Path(__file__).parents[1] / "pretrained" / "english" / MODEL_FILENAME  # ships with the package


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it; on any failure
    (a full disk included) the temporary file is removed and the previous ``path`` is untouched."""
    with atomic_open(path) as out:
        torch.save(obj, out)


def safe_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True``; a file that needs unpickling code is refused."""
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f"it would call {found.group(1)}" if found else str(err).strip().splitlines()[0]
        raise AsrError(
            f"{path}: refused to load: not a plain-tensor checkpoint ({what}; unpickling it could run "
            "arbitrary code, so asr loads only tensors and plain values)"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise AsrError(f"{path}: cannot read checkpoint ({err})") from None


class PackagedModel:
    """A loaded model with everything needed to run it: features, tokenizer, network."""

    def __init__(
        self,
        network: AcousticModel,
        tokenizer: Tokenizer,
        metadata: dict[str, Any],
        decoder_settings: dict[str, Any] | None = None,
        path: Path | None = None,
    ):
        self.network = network.eval()
        self.tokenizer = tokenizer
        self.log_mel = LogMel(network.feature_config)
        self.metadata = metadata
        self.decoder_settings = decoder_settings or {}  # default decoder (asr tune-lm); paths relative to path's folder
        self.path = path  # the file it was loaded from

    def decoder_config(self, **overrides):
        """The model's default decoder settings with ``overrides`` (None = keep) applied."""
        from asr.decode.ctc import resolve_decoder_config

        folder = self.path.parent if self.path is not None else None
        return resolve_decoder_config(self.decoder_settings, folder, **overrides)

    @property
    def sample_rate(self) -> int:
        return self.network.feature_config.sample_rate


def package(network: AcousticModel, tokenizer: Tokenizer, metadata: dict[str, Any]) -> dict[str, Any]:
    """The packaged-model dictionary: weights, configs, vocabulary and tokenizer, provenance."""
    from dataclasses import asdict

    return {
        "format": MODEL_FORMAT,
        "feature_config": asdict(network.feature_config),
        "model_config": asdict(network.config),
        "vocabulary": list(tokenizer.vocabulary),
        "tokenizer": tokenizer.state(),  # a BPE model as a uint8 tensor of its bytes
        "state_dict": {k: v.detach().cpu() for k, v in network.state_dict().items()},
        "metadata": metadata,
    }


def resolve_model_path(path: str | Path | None) -> Path:
    """A model file, or an experiment directory holding ``model.pt``; ``None`` is the default
    English model shipped inside the package."""
    if path is None:
        if not DEFAULT_MODEL.is_file():
            raise AsrError(f"no default model in this installation ({DEFAULT_MODEL} is missing); give --model")
        return DEFAULT_MODEL
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILENAME
    if not path.is_file():
        raise AsrError(f"{path}: no such model (give a model.pt file or an experiment directory)")
    return path


def load_model(path: str | Path | None = None) -> PackagedModel:
    """Load a packaged model from a file or experiment directory (default: the shipped English
    model), safely. Half-precision weights are cast to float32."""
    path = resolve_model_path(path)
    data = safe_load(path)
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise AsrError(f"{path}: not an asr packaged model (expected format {MODEL_FORMAT!r})")
    features = dataclass_from_dict(FeatureConfig, data["feature_config"], f"{path} feature_config")
    config = dataclass_from_dict(ModelConfig, data["model_config"], f"{path} model_config")
    try:
        tokenizer = tokenizer_from_state(data.get("tokenizer", {"kind": "char"}), data["vocabulary"])
    except AsrError as err:
        raise AsrError(f"{path}: {err}") from None
    network = AcousticModel(len(tokenizer), features, config)
    try:
        network.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[0]
        raise AsrError(f"{path}: weights do not fit the model this version builds ({first_line})") from None
    return PackagedModel(network, tokenizer, data.get("metadata", {}), data.get("decoder"), path)


def store_decoder_settings(path: str | Path, settings: dict[str, Any]) -> Path:
    """Rewrite a packaged model (atomically) so that it carries ``settings`` as its default
    decoder; LM and lexicon paths inside the model's folder are stored relative to it."""
    path = resolve_model_path(path)
    data = safe_load(path)
    folder = path.parent.resolve()
    settings = dict(settings)
    for key in ("lm", "lexicon"):
        if settings.get(key):
            target = Path(settings[key]).resolve()
            settings[key] = str(target.relative_to(folder)) if target.is_relative_to(folder) else str(target)
    data["decoder"] = settings
    atomic_save(data, path)
    return path
