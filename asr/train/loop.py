"""The training loop: bucketed batches, AdamW with warm-up and decay, clipping, CTC, checkpoints.

One process, or several launched by ``torchrun`` (DistributedDataParallel; see
:mod:`asr.train.distributed` and :mod:`asr.train.step`). Training data is a manifest
or WebDataset-format shards (:mod:`asr.train.batches`). The first process writes
into the experiment directory:

- ``config.toml``   the resolved config (every default filled in)
- ``train.log``     the log of this and any resumed run
- ``tensorboard/``  loss, learning rate and dev WER scalars
- ``last.pt``       the full training state, every ``checkpoint_every_steps`` steps and each
  epoch (for ``--resume``; :mod:`asr.train.state`)
- ``checkpoints/``  packaged models of the last and best epochs (for ``asr average``)
- ``model.pt``      the packaged model of the best epoch by dev WER
- ``history.json``  per-epoch train loss, dev loss, dev WER, skipped batches, seconds
- ``curves.png``    train/dev loss and dev WER per epoch, redrawn after every epoch

What a config adds to fitting CTC (per-speaker normalisation, word cropping, a speaker
adversary) runs as training extensions, through the hooks of :mod:`asr.train.extensions`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from asr.data.dataset import SpeechDataset, read_manifest
from asr.data.text import Tokenizer, normalize_text
from asr.evaluation.metrics import error_counts
from asr.evaluation.report.plots import plot_training_curves
from asr.features.logmel import LogMel, RunningStatistics
from asr.inference.recognize import recognize
from asr.model.acoustic import AcousticModel
from asr.model.checkpoint import MODEL_FILENAME, atomic_save, package
from asr.train import distributed
from asr.train.batches import ManifestBatches, ShardBatches, training_batches
from asr.train.config import ExperimentConfig, TrainConfig
from asr.train.distributed import DistributedContext
from asr.train.extensions import TrainingExtension, TrainingRun, build_extensions
from asr.train.state import STATE_FILENAME, load_state, random_states, restore_random_states, save_snapshot, save_state
from asr.train.step import StepOutcome, TrainStep
from asr.utils.config import dump_toml, to_plain_dict
from asr.utils.errors import AsrError
from asr.utils.progress import progress

log = logging.getLogger(__name__)


def learning_rate_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Multiplier of the peak learning rate at ``step`` (warm-up, then the chosen decay)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    if config.schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1 + math.cos(math.pi * progress))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * shape


def feature_statistics(features: Iterable[torch.Tensor], n_mels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over feature matrices ``(T, F)``."""
    stats = RunningStatistics(n_mels)
    for matrix in progress(features, desc="feature stats", unit="utt", leave=False):
        stats.add(matrix)
    return stats.result()


@dataclass
class TrainResult:
    best_epoch: int  # epoch whose weights are in model.pt
    best_dev_wer: float  # dev WER of that epoch
    epochs_run: int  # epochs completed, resumed ones included
    seconds: float  # wall time of this invocation
    skipped_batches: int  # batches skipped for a non-finite loss or gradient
    rank: int = 0  # this process' rank (0 wrote the files)


class _ExperimentLog:
    """Attach ``train.log`` to the package logger for the duration of a run."""

    def __init__(self, path: Path):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def __enter__(self):
        root = logging.getLogger("asr")
        root.addHandler(self.handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        logging.getLogger("asr").removeHandler(self.handler)
        self.handler.close()


class _WarningsOnly:
    """Processes other than the first log warnings only, so the console is not repeated N times."""

    def __enter__(self):
        self.level = logging.getLogger("asr").level
        logging.getLogger("asr").setLevel(logging.WARNING)
        return self

    def __exit__(self, *exc):
        logging.getLogger("asr").setLevel(self.level)


def train(
    config: ExperimentConfig,
    train_manifest: str | Path,
    dev_manifest: str | Path,
    exp_dir: str | Path,
    resume: bool = False,
    extensions: Sequence[TrainingExtension] = (),
) -> TrainResult:
    """Train an acoustic model; the best epoch ends up packaged in ``exp_dir/model.pt``.

    ``train_manifest`` is a manifest or shards (a folder, a ``shard-{000000..000009}.tar``
    pattern, or URLs). Under ``torchrun`` every process calls this; they train together.
    ``extensions`` run after those the config asks for (see :mod:`asr.train.extensions`).
    """
    context = distributed.context_from_environment()
    device = distributed.select_device(config.train.device, context)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    distributed.start(context, device)
    run = None
    try:
        with _ExperimentLog(exp_dir / "train.log") if context.is_main else _WarningsOnly():
            run = _Run(config, str(train_manifest), Path(dev_manifest), exp_dir, resume, context, device, extensions)
            return run.run()
    finally:
        if run is not None:
            run.release_data_parallel()
        distributed.stop(context)


def _initialise_from(network: AcousticModel, tokenizer: Tokenizer, model_path: str) -> None:
    """Start from a packaged model's weights and normalisation statistics (fine-tuning). The model
    must have the same shape and token vocabulary; otherwise training stops with what differs."""
    from asr.model.checkpoint import load_model

    start = load_model(model_path)
    if list(start.tokenizer.vocabulary) != list(tokenizer.vocabulary):
        raise AsrError(
            f"init_from {model_path}: its tokens differ from this training set's; fine-tuning needs the same"
        )
    if start.network.config != network.config or start.network.feature_config != network.feature_config:
        raise AsrError(
            f"init_from {model_path}: its [model]/[features] differ from this config's "
            f"({start.network.config}, {start.network.feature_config})"
        )
    network.load_state_dict(start.network.state_dict())
    log.info("initialised from %s", start.path)


_END = object()  # what next() returns when this process' batches for the epoch are used up


def cpu_runs_bf16_recurrence() -> bool:
    """Whether a recurrent layer runs under bfloat16 autocast on this CPU (oneDNN refuses it
    on processors without AVX-512 BF16 or AMX)."""
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(2, 2, batch_first=True)(torch.zeros(1, 2, 2))
    except RuntimeError:
        return False
    return True


class _Run:
    """One invocation of training: set up (or restore) everything, then run the remaining epochs."""

    def __init__(
        self,
        config,
        train_spec: str,
        dev_manifest: Path,
        exp_dir: Path,
        resume: bool,
        context: DistributedContext,
        device: str,
        extensions: Sequence[TrainingExtension],
    ):
        self.started = time.perf_counter()
        self.config, self.exp_dir, self.context, self.device = config, exp_dir, context, device
        tc = self.tc = config.train
        if tc.precision == "fp16" and not device.startswith("cuda"):
            raise AsrError("precision fp16 needs a CUDA device; use bf16 (or fp32) on CPU")
        if tc.precision == "bf16" and device == "cpu" and not cpu_runs_bf16_recurrence():
            raise AsrError(
                "precision bf16: this CPU's oneDNN has no bfloat16 LSTM kernel (it needs AVX-512 BF16 or AMX); use fp32"
            )
        state = load_state(exp_dir) if resume else None
        if context.is_main:
            (exp_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")
        random.seed(tc.seed)
        torch.manual_seed(tc.seed)

        log_mel = LogMel(config.features)
        self.data, self.tokenizer = training_batches(train_spec, log_mel, config.tokenizer, config.augment, tc, context)
        dev_utts = read_manifest(dev_manifest, skip_missing=True)
        if not dev_utts:
            raise AsrError(f"{dev_manifest}: no usable utterances to validate on")
        self.dev_set = SpeechDataset(dev_utts, log_mel, self.tokenizer)
        self.dev_references = {i: normalize_text(u.text) for i, u in enumerate(dev_utts)}
        self.train_source = train_spec
        log.info(
            "training on %d utterances (%.1f min) from %s, validating on %d (%.1f min), device %s, %d process(es)",
            len(self.data.durations),
            sum(self.data.durations) / 60,
            "shards" if isinstance(self.data, ShardBatches) else "a manifest",
            len(dev_utts),
            sum(u.duration for u in dev_utts) / 60,
            device,
            context.world_size,
        )

        network = self.network = AcousticModel(len(self.tokenizer), config.features, config.model, config.augment)
        if tc.init_from and state is None:
            _initialise_from(network, self.tokenizer, tc.init_from)
        elif network.normalizer.uses_statistics and state is None and context.is_main:
            # The other processes receive these statistics from the first one (below).
            features = self.data.statistics_features(tc.stats_utterances, tc.seed)
            network.normalizer.set_statistics(*feature_statistics(features, config.features.n_mels))
        if state is not None:
            network.load_state_dict(state["model"])
        network.to(device)
        self.num_params = sum(p.numel() for p in network.parameters())
        log.info("model: %s, %.2f M parameters", config.model, self.num_params / 1e6)
        self.model = network
        if context.is_distributed:
            # DDP broadcasts the first process' parameters; the buffers (normalisation statistics,
            # fixed during training) are sent here once instead of before every forward pass.
            distributed.broadcast_from_first(list(network.buffers()), context)
            device_ids = [torch.device(device).index] if device.startswith("cuda") else None
            self.model = DistributedDataParallel(network, device_ids=device_ids, broadcast_buffers=False)
        self.extensions = build_extensions(config, extensions)
        train_set = self.data.dataset if isinstance(self.data, ManifestBatches) else None
        self.extensions.setup(TrainingRun(network, train_set, self.dev_set, self.tokenizer, device, context))

        self.total_steps = tc.epochs * self.data.batches_per_epoch()
        parameters = list(network.parameters()) + self.extensions.parameters()
        self.optimizer = torch.optim.AdamW(parameters, lr=tc.learning_rate, weight_decay=tc.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate_factor(step, self.total_steps, tc)
        )
        self.train_step = TrainStep(
            self.model,
            network,
            self.optimizer,
            self.scheduler,
            self.tokenizer.blank_id,
            tc.grad_clip,
            tc.precision,
            device,
            context,
            self.extensions,
        )

        self.history: list[dict] = []
        self.best = {"epoch": 0, "dev_wer": float("inf"), "dev_loss": float("inf")}
        self.step = 0
        self.skipped = {"nonfinite_loss": 0, "nonfinite_gradient": 0, "overflow": 0}
        self.start_epoch, self.position = 1, None
        self._new_epoch_totals()
        if state is not None:
            self._restore(state)
        elif context.rank > 0:
            torch.manual_seed(tc.seed + 1000003 * context.rank)  # own dropout and SpecAugment masks

    def release_data_parallel(self) -> None:
        """Drop the DistributedDataParallel wrapper, which must not outlive its process group
        (see ``distributed.stop``)."""
        self.model = self.train_step = None

    def _new_epoch_totals(self) -> None:
        self.epoch_totals = {"loss": 0.0, "batches": 0, "nonfinite_loss": 0, "nonfinite_gradient": 0, "overflow": 0}

    # ------------------------------------------------------------------ saving and restoring

    def _state(self, epoch: int, epoch_done: bool) -> dict:
        """The full training state (every process must call this: it gathers their positions
        and random generators)."""
        positions = distributed.gather(None if epoch_done else self.data.position(), self.context)
        randoms = distributed.gather(random_states(self.device), self.context)
        scaler = self.train_step.scaler
        return {
            "model": self.network.state_dict(),
            "extensions": self.extensions.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "epoch": epoch,
            "epoch_done": epoch_done,
            "position": positions,
            "epoch_totals": dict(self.epoch_totals),
            "step": self.step,
            "skipped": dict(self.skipped),
            "history": self.history,
            "best": self.best,
            "random": randoms,
            "world_size": self.context.world_size,
        }

    def _save_state(self, epoch: int, epoch_done: bool) -> None:
        state = self._state(epoch, epoch_done)
        if self.context.is_main:
            save_state(state, self.exp_dir)
            log.debug(
                "training state saved: step %d, epoch %d %s",
                self.step,
                epoch,
                "done" if epoch_done else f"at batch position {state['position'][0]}",
            )

    def _restore(self, state: dict) -> None:
        self.extensions.load_state_dict(state["extensions"], self.exp_dir / STATE_FILENAME)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.train_step.scaler and state["scaler"]:
            self.train_step.scaler.load_state_dict(state["scaler"])
        self.history, self.best, self.step = state["history"], state["best"], state["step"]
        self.skipped.update(state["skipped"])
        if state["epoch_done"]:
            self.start_epoch = state["epoch"] + 1
            where = f"after epoch {state['epoch']}"
        else:
            self.start_epoch = state["epoch"]
            self.position = self.data.resume_position(state["position"])
            if self.position is not None:
                self.epoch_totals.update(state["epoch_totals"])
            where = f"in epoch {state['epoch']} at batch position {self.position}"
        if len(state["random"]) == self.context.world_size:
            restore_random_states(state["random"][self.context.rank], self.device)
        else:
            log.warning("the number of processes changed: random generators start afresh")
            torch.manual_seed(self.tc.seed + 1000003 * self.context.rank + state["step"])
        log.info("resumed from %s %s (step %d)", self.exp_dir / STATE_FILENAME, where, self.step)

    # ------------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        writer = None
        if self.context.is_main:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when training

            writer = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=self.step)
        try:
            for epoch in range(self.start_epoch, self.tc.epochs + 1):
                self._epoch(epoch, writer)
        finally:
            if writer:
                writer.close()
        skipped = self.skipped["nonfinite_loss"] + self.skipped["nonfinite_gradient"]
        log.info(
            "best epoch %d, dev WER %.2f%%; %d batch(es) skipped for a non-finite loss or gradient",
            self.best["epoch"],
            100 * self.best["dev_wer"],
            skipped,
        )
        return TrainResult(
            best_epoch=self.best["epoch"],
            best_dev_wer=self.best["dev_wer"],
            epochs_run=len(self.history),
            seconds=time.perf_counter() - self.started,
            skipped_batches=skipped,
            rank=self.context.rank,
        )

    def _epoch(self, epoch: int, writer) -> None:
        epoch_started = time.perf_counter()
        position, self.position = self.position, None
        if position is None:
            self._new_epoch_totals()
        self.extensions.start_epoch(epoch, resumed=position is not None)
        self._train_epoch(epoch, position, writer)
        dev_wer, dev_loss = self._validate()
        totals = self.epoch_totals
        record = {
            "epoch": epoch,
            "train_loss": totals["loss"] / max(1, totals["batches"]),
            "dev_loss": dev_loss,
            "dev_wer": dev_wer,
            "skipped_batches": {k: totals[k] for k in ("nonfinite_loss", "nonfinite_gradient", "overflow")},
            "seconds": time.perf_counter() - epoch_started,
        }
        self.history.append(record)
        log.info(
            "epoch %d: train loss %.4f, dev loss %.4f, dev WER %.2f%%, %.1fs",
            epoch,
            record["train_loss"],
            dev_loss,
            100 * dev_wer,
            record["seconds"],
        )
        improved = (dev_wer, dev_loss) < (self.best["dev_wer"], self.best["dev_loss"])
        if improved:
            self.best = {"epoch": epoch, "dev_wer": dev_wer, "dev_loss": dev_loss}
        if self.context.is_main:
            writer.add_scalar("dev/loss", dev_loss, self.step)
            writer.add_scalar("dev/wer", dev_wer, self.step)
            metadata = {
                "config": to_plain_dict(self.config),
                "epoch": epoch,
                "dev_wer": dev_wer,
                "dev_loss": dev_loss,
                "train_manifest": self.train_source,
                "parameters": self.num_params,
            }
            packaged = package(self.network, self.tokenizer, metadata)
            if improved:
                atomic_save(packaged, self.exp_dir / MODEL_FILENAME)
            save_snapshot(packaged, self.exp_dir, epoch, self.history, self.tc.keep_checkpoints)
            (self.exp_dir / "history.json").write_text(json.dumps(self.history, indent=2), encoding="utf-8")
            plot_training_curves(self.history, self.exp_dir / "curves.png")
        self._save_state(epoch, epoch_done=True)

    def _train_epoch(self, epoch: int, position, writer) -> None:
        self.model.train()
        batches = self.data.epoch(epoch, position)
        done = position if isinstance(position, int) else sum(position["consumed"]) if position else 0
        bar = progress(
            total=self.data.batches_per_epoch(),
            desc=f"epoch {epoch}/{self.tc.epochs}",
            unit="batch",
            enabled=self.context.is_main,
            leave=False,
            initial=done,
        )
        every = self.tc.checkpoint_every_steps
        while True:
            batch = next(batches, _END)
            outcome = self.train_step(None if batch is _END else batch, exhausted=batch is _END)
            if outcome.status == "done":
                break
            bar.update(1)
            if outcome.status != "trained":
                self._count_skip(epoch, outcome)
                continue
            self.step += 1
            self.epoch_totals["loss"] += outcome.loss
            self.epoch_totals["batches"] += 1
            bar.set_postfix(loss=f"{outcome.loss:.3f}")
            log.debug(
                "step %d: loss %.6f, grad norm %.6f, %d utterances",
                self.step,
                outcome.loss,
                outcome.grad_norm,
                outcome.utterances,
            )
            if writer:
                writer.add_scalar("train/loss", outcome.loss, self.step)
                for name, value in outcome.metrics.items():
                    writer.add_scalar(f"train/{name}", value, self.step)
                writer.add_scalar("train/grad_norm", outcome.grad_norm, self.step)
                writer.add_scalar("train/learning_rate", self.scheduler.get_last_lr()[0], self.step)
            if every and self.step % every == 0:
                self._save_state(epoch, epoch_done=False)
        bar.close()

    def _count_skip(self, epoch: int, outcome: StepOutcome) -> None:
        if outcome.status == "empty":
            return
        self.skipped[outcome.status] += 1
        self.epoch_totals[outcome.status] += 1
        if outcome.status == "overflow":
            log.debug("epoch %d: fp16 gradient overflow, loss scale lowered", epoch)
        else:
            log.warning(
                "epoch %d: non-finite %s, batch of %d utterance(s) skipped (%d so far)",
                epoch,
                outcome.status.split("_", 1)[1],
                outcome.utterances,
                self.skipped[outcome.status],
            )

    def _validate(self) -> tuple[float, float]:
        """Dev WER and mean dev loss; each process decodes a share, all get the totals."""
        dev = recognize(
            self.network,
            self.dev_set,
            self.tokenizer,
            device=self.device,
            compute_loss=True,
            description="dev",
            rank=self.context.rank,
            world_size=self.context.world_size,
        )
        hypotheses, losses = {}, {}
        for part_hypotheses, part_losses in distributed.gather((dev.hypotheses, dev.losses), self.context):
            hypotheses.update(part_hypotheses)
            losses.update(part_losses)
        scored = [i for i in hypotheses if self.dev_references[i]]
        dev_wer = error_counts([self.dev_references[i] for i in scored], [hypotheses[i] for i in scored]).wer
        dev_loss = sum(losses.values()) / len(losses) if losses else float("nan")
        return dev_wer, dev_loss
