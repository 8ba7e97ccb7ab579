"""Read a TOML experiment config into typed dataclasses, rejecting unknown keys.

A config has one table per concern::

    [features]   -> asr.features.logmel.FeatureConfig
    [augment]    -> asr.features.augment.AugmentConfig
    [model]      -> asr.model.acoustic.ModelConfig
    [train]      -> TrainConfig (below)
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
from asr.train.step import PRECISIONS


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
    speaker_adversary_weight: float = 0.0  # > 0: speaker-adversarial training, the reversed gradient's scale (asr.speakers.adversary)
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
