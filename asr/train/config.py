"""Read a TOML experiment config into typed dataclasses, rejecting unknown keys.

A config has one table per concern::

    [features]   -> asr.features.logmel.FeatureConfig
    [augment]    -> asr.features.augment.AugmentConfig
    [model]      -> asr.model.acoustic.ModelConfig
    [train]      -> TrainConfig (below)
    [tokenizer]  -> asr.data.text.TokenizerConfig

A file may start from another: a top-level ``base = "other.toml"`` (relative to the file) gives
the tables it changes, key by key; the base may have a base of its own. Overrides
``section.key=value`` (``asr train --set``) go on top of all.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.data.text import TokenizerConfig
from asr.features.augment import AugmentConfig
from asr.features.logmel import FeatureConfig
from asr.model.acoustic import ModelConfig
from asr.train.step import PRECISIONS
from asr.utils.config import dataclass_from_dict
from asr.utils.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20  # passes over the training set
    batch_size: int = 32  # most utterances in one batch
    max_batch_seconds: float = 240.0  # most padded audio seconds in one batch
    learning_rate: float = 1e-3  # peak AdamW learning rate, reached after warm-up
    weight_decay: float = 1e-2  # AdamW decoupled weight decay
    warmup_steps: int = 100  # linear warm-up from 0 to the peak learning rate
    schedule: str = "cosine"  # decay after warm-up: "cosine", "linear" or "constant"
    min_lr_ratio: float = 0.05  # the decay ends at this fraction of the peak
    grad_clip: float = 5.0  # gradient-norm clipping threshold
    seed: int = 0  # seeds weights, batch order and augmentation
    stats_utterances: int = 2000  # utterances sampled for the global CMVN statistics
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda"
    precision: str = "fp32"  # "fp32", "bf16" (autocast) or "fp16" (autocast + loss scaling, CUDA only)
    checkpoint_every_steps: int = 1000  # also write last.pt every this many optimizer steps; 0 = epoch ends only
    keep_checkpoints: int = 5  # epoch snapshots kept in checkpoints/: the latest N and the best N
    num_workers: int = 0  # DataLoader worker processes that read and featurise audio
    shuffle_buffer: int = 500  # streamed shards: utterances in the shuffle buffer (memory: their encoded audio)
    bucket_buffer: int = 500  # streamed shards: utterances sorted together into length buckets
    init_from: str = ""  # a packaged model (model.pt or experiment folder) whose weights start training; "" = random
    speaker_adversary_weight: float = (
        0.0  # > 0: speaker-adversarial training, the reversed gradient's scale (asr.speakers.adversary)
    )
    speaker_adversary_hidden: int = 128  # hidden units of the adversarial speaker classifier

    def __post_init__(self):
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"schedule must be cosine|linear|constant, not {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.checkpoint_every_steps < 0 or self.keep_checkpoints < 1 or self.num_workers < 0:
            raise ValueError("checkpoint_every_steps and num_workers must be >= 0, keep_checkpoints >= 1")
        if self.shuffle_buffer < 1 or self.bucket_buffer < 1:
            raise ValueError("shuffle_buffer and bucket_buffer must be >= 1")
        if self.speaker_adversary_weight < 0 or self.speaker_adversary_hidden < 1:
            raise ValueError("speaker_adversary_weight must be >= 0 and speaker_adversary_hidden >= 1")


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
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)} (known: {sorted(sections)})")
    parts = {
        name: dataclass_from_dict(hints[name], data[name], f"{where} [{name}]") for name in sections if name in data
    }
    return ExperimentConfig(**parts)


def _read_toml(path: Path) -> dict[str, Any]:
    """The tables of one TOML file; ConfigError naming it when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML ({err})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    except (IsADirectoryError, PermissionError) as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None


def _merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """``own``'s tables over ``base``'s, key by key."""
    merged = dict(base)
    for section, table in own.items():
        both = isinstance(table, dict) and isinstance(base.get(section), dict)
        merged[section] = {**base[section], **table} if both else table
    return merged


def _resolved_tables(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The tables of ``path`` merged over those of its ``base`` chain (``chain``: the files that
    have ``path`` as their base, nearest last); a cycle is a ConfigError naming its files."""
    if path.resolve() in chain:
        files = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"config bases form a cycle: {files}")
    data = _read_toml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be the name of a TOML file, got {base!r}")
    return _merge(_resolved_tables(path.parent / base, (*chain, path.resolve())), data)


def _toml_value(text: str) -> Any:
    """``text`` read as a TOML value (a number, boolean, quoted string, list), else as the string itself."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> ``(section, key, value)``; ConfigError for an unknown section or key."""
    name, equals, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not equals or not dot or not key:
        raise ConfigError(f"override {text!r}: expected section.key=value, e.g. train.epochs=10")
    hints = typing.get_type_hints(ExperimentConfig)
    if section not in hints:
        raise ConfigError(f"override {text!r}: unknown section [{section}] (known: {', '.join(sorted(hints))})")
    known = {f.name for f in dataclasses.fields(hints[section])}
    if key not in known:
        raise ConfigError(
            f"override {text!r}: unknown key {key!r} in [{section}] (known keys: {', '.join(sorted(known))})"
        )
    return section, key, _toml_value(value.strip())


def load_config(path: str | Path, overrides: typing.Iterable[str] = ()) -> ExperimentConfig:
    """Parse a TOML file, merged over its ``base`` chain, with ``overrides`` (``section.key=value``,
    the value read as TOML, else as a plain string) on top, into an :class:`ExperimentConfig`."""
    path = Path(path)
    data = _resolved_tables(path)
    for section, key, value in map(_parse_override, overrides):
        data = _merge(data, {section: {key: value}})
    return config_from_dict(data, where=str(path))
