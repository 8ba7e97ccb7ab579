"""Training extensions: what a run does besides fitting CTC, kept out of the loop and the step.

The training loop (:mod:`asr.train.loop`) and the optimisation step
(:mod:`asr.train.step`) fit the acoustic model and nothing else. Whatever a
config adds to that (per-speaker normalisation, word cropping, a speaker
adversary, or an object passed to :func:`asr.train.loop.train`) is a training
extension: an object with a ``name`` (its key in ``last.pt``) and any of these
hooks, called in this order:

``setup(run: TrainingRun) -> None``
    once, when the network has its normalisation statistics and the data sets
    exist, before the optimizer is built; may refuse the run with an ``AsrError``.
``parameters() -> Iterable[torch.nn.Parameter]``
    extra trainable parameters, optimised with the network's (AdamW, same schedule).
``start_epoch(epoch: int, resumed: bool) -> None``
    before each epoch's batches; ``resumed``: the epoch continues from ``last.pt``
    mid-way, with the extension's state as it was then.
``extra_loss(encoded, lengths, batch) -> (loss, metrics)``
    each step, under the step's autocast: ``encoded: (B, T', D)`` the recurrent
    outputs, ``lengths: (B,)`` their valid frames, ``batch`` the
    :class:`asr.data.dataset.Batch`. ``loss`` is a scalar tensor added to the
    CTC loss before back-propagation; ``metrics`` (name -> float) go to
    TensorBoard as ``train/NAME``. An extension that adds a loss trains in one
    process: its parameters are not part of DistributedDataParallel.
``state_dict() -> object`` and ``load_state_dict(state) -> None``
    what ``last.pt`` keeps of the extension so that a resumed run continues
    bit for bit; plain containers, numbers, strings and tensors (``last.pt`` is
    read with ``weights_only``). ``load_state_dict`` receives ``None`` when
    ``last.pt`` holds nothing for it (the run started without it, or before the
    extension kept anything) and refuses with an ``AsrError`` if it cannot
    continue from nothing. The two come together: an extension defines both or
    neither.

Every hook is optional and found by name, not by inheritance: the speaker
extensions live in :mod:`asr.speakers`, which sits below :mod:`asr.train` in
the stage order (``tests/test_layout.py``) and so cannot import a base class
from here, and an extension that only prepares the data (per-speaker
normalisation) defines ``setup`` alone. :class:`TrainingExtensions` checks the
hooks once, when the list is built, and is the one object the loop and the step
call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from asr.data.dataset import Batch, SpeechDataset
from asr.data.text import Tokenizer
from asr.model.acoustic import AcousticModel
from asr.speakers.adversary import SpeakerAdversarialTraining
from asr.speakers.normalization import SpeakerNormalizationSetup
from asr.train.distributed import DistributedContext
from asr.train.word_crop import WordCropping
from asr.utils.errors import AsrError

if TYPE_CHECKING:  # asr.train.config imports the step, which imports this module
    from asr.train.config import ExperimentConfig


class TrainingExtension(Protocol):
    """The one attribute every extension has; its hooks are optional (see the module)."""

    name: str  # unique within a run: the extension's key in last.pt and in error messages


@dataclass(frozen=True)
class TrainingRun:
    """What ``setup`` sees of a run."""

    network: AcousticModel  # the model being trained (never the DistributedDataParallel wrapper)
    train_set: SpeechDataset | None  # the training utterances; None when they stream from shards
    dev_set: SpeechDataset  # the validation utterances
    tokenizer: Tokenizer
    device: str  # where the network is, e.g. "cpu" or "cuda:0"
    context: DistributedContext  # this process among those training together


class TrainingExtensions:
    """A run's extensions, called in list order."""

    def __init__(self, extensions: list[TrainingExtension]):
        names = [getattr(extension, "name", None) for extension in extensions]
        if not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
            raise ValueError(f"training extensions need distinct non-empty names, got {names}")
        for extension in extensions:
            if hasattr(extension, "state_dict") != hasattr(extension, "load_state_dict"):
                raise ValueError(
                    f"training extension {extension.name!r}: define state_dict and load_state_dict, or neither"
                )
        self.extensions = extensions

    def _with(self, hook: str) -> list[Any]:
        return [extension for extension in self.extensions if hasattr(extension, hook)]

    @property
    def adding_loss(self) -> list[str]:
        """The names of the extensions that add to the loss (the step hands them the recurrent outputs)."""
        return [extension.name for extension in self._with("extra_loss")]

    def setup(self, run: TrainingRun) -> None:
        for extension in self._with("setup"):
            extension.setup(run)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [parameter for extension in self._with("parameters") for parameter in extension.parameters()]

    def start_epoch(self, epoch: int, resumed: bool) -> None:
        for extension in self._with("start_epoch"):
            extension.start_epoch(epoch, resumed)

    def extra_loss(
        self, encoded: torch.Tensor, lengths: torch.Tensor, batch: Batch
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """The sum of the extensions' losses (``None`` when none adds one) and all their metrics;
        ``encoded: (B, T', D)``, ``lengths: (B,)``."""
        total, metrics = None, {}
        for extension in self._with("extra_loss"):
            loss, more = extension.extra_loss(encoded, lengths, batch)
            total = loss if total is None else total + loss
            metrics.update(more)
        return total, metrics

    def state_dict(self) -> dict[str, Any]:
        """Extension name -> its state, for ``last.pt``."""
        return {extension.name: extension.state_dict() for extension in self._with("state_dict")}

    def load_state_dict(self, states: dict[str, Any], where: Path) -> None:
        """Restore from ``states`` (read from ``where``); a state whose extension this run lacks
        is refused (the config changed since the run started)."""
        active = {extension.name for extension in self._with("load_state_dict")}
        orphans = sorted(set(states) - active)
        if orphans:
            raise AsrError(
                f"{where}: the run started with the training extension(s) {', '.join(orphans)}, which this "
                "one lacks (a changed config?); resume with the config it started with"
            )
        for extension in self._with("load_state_dict"):
            try:
                extension.load_state_dict(states.get(extension.name))
            except AsrError as err:
                raise AsrError(f"{where}: {err}") from None


def build_extensions(config: ExperimentConfig, extra: Sequence[TrainingExtension] = ()) -> TrainingExtensions:
    """The extensions ``config`` asks for, then ``extra`` (given to :func:`asr.train.loop.train`)."""
    extensions: list[TrainingExtension] = []
    if config.features.normalization == "speaker":
        extensions.append(SpeakerNormalizationSetup())
    if config.augment.crop_prob > 0:
        extensions.append(WordCropping(config.augment.crop_prob, config.augment.crop_from_epoch))
    if config.train.speaker_adversary_weight > 0:
        extensions.append(
            SpeakerAdversarialTraining(config.train.speaker_adversary_weight, config.train.speaker_adversary_hidden)
        )
    return TrainingExtensions(extensions + list(extra))
