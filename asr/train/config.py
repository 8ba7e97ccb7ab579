"""Read a TOML experiment config into typed dataclasses, rejecting unknown keys.

A config has one table per concern::

    [features]   -> asr.features.logmel.FeatureConfig
    [augment]    -> asr.features.augment.AugmentConfig
    [model]      -> asr.model.acoustic.ModelConfig
    [train]      -> asr.train.loop.TrainConfig
    [tokenizer]  -> asr.data.text.TokenizerConfig
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.features.augment import AugmentConfig
from asr.utils.config import dataclass_from_dict
from asr.utils.errors import ConfigError
from asr.features.logmel import FeatureConfig
from asr.model.acoustic import ModelConfig
from asr.data.text import TokenizerConfig
from asr.train.loop import TrainConfig


@dataclass(frozen=True)
class ExperimentConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)  # audio -> log-mel
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training-time perturbation
    model: ModelConfig = field(default_factory=ModelConfig)  # acoustic model shape
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation and schedule
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # characters or BPE pieces


def config_from_dict(data: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from nested dicts (e.g. a parsed TOML file)."""
    sections = {f.name: f.type for f in dataclasses.fields(ExperimentConfig)}
    hints = typing.get_type_hints(ExperimentConfig)
    unknown = set(data) - set(sections)
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {sorted(unknown)} (known: {sorted(sections)})"
        )
    parts = {
        name: dataclass_from_dict(hints[name], data[name], f"{where} [{name}]")
        for name in sections
        if name in data
    }
    return ExperimentConfig(**parts)


def load_config(path: str | Path) -> ExperimentConfig:
    """Parse a TOML file into an :class:`ExperimentConfig`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML ({err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    except (IsADirectoryError, PermissionError) as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    return config_from_dict(data, where=str(path))
