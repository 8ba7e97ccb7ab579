"""One optimisation step: CTC loss of the global batch, mixed precision, data parallelism, guards.

The loss of a step is the one a single process would compute on the whole
global batch: the mean over its utterances of (CTC loss / target length),
i.e. ``torch.nn.CTCLoss(reduction="mean")``. With ``W`` processes each holding
a share of the batch, process ``r`` back-propagates
``W / C * sum_{i in share r} loss_i / L_i`` where ``C`` counts the utterances of
all shares; DistributedDataParallel averages gradients over the ``W``
processes, which leaves exactly the single-process gradient
``1 / C * sum_i d(loss_i / L_i)``. (Averaging each process' own mean instead
would weight utterances by the size of the share they landed in.)

Every step all processes first agree (one small all-reduce) on whether any has
run out of batches (the epoch ends for all) and how many utterances the global
batch has (none: skip); after the forward pass, on whether any loss is NaN/Inf
(skip and count). Gradients are identical on all processes after DDP's
all-reduce, so a non-finite gradient norm is seen, and the step skipped,
everywhere at once.

Training extensions (:mod:`asr.train.extensions`) may add a loss computed from the
recurrent outputs; it is added, as it is, to the loss this process back-propagates.
Such extensions train in one process only.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from asr.data.dataset import Batch
from asr.model.acoustic import AcousticModel
from asr.train.distributed import DistributedContext, all_reduce_sum
from asr.train.extensions import TrainingExtensions
from asr.utils.errors import AsrError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class StepOutcome:
    status: str  # "trained", "done", "empty", "nonfinite_loss", "nonfinite_gradient" or "overflow"
    loss: float = float("nan")  # mean CTC loss over the global batch's utterances
    grad_norm: float = float("nan")  # gradient norm before clipping
    utterances: int = 0  # utterances in the global batch
    metrics: dict[str, float] = field(default_factory=dict)  # the training extensions' (name -> value)


def ctc_loss_sum(log_probs: torch.Tensor, lengths: torch.Tensor, batch: Batch, blank: int) -> torch.Tensor:
    """Sum over the batch of each utterance's CTC loss divided by its target length.

    ``log_probs: (B, T, V)``, ``lengths: (B,)``; computed in float32 whatever
    the autocast precision. Impossible alignments count as zero, as in training.
    """
    targets = batch.targets.to(log_probs.device)
    target_lengths = batch.target_lengths.to(log_probs.device)
    losses = F.ctc_loss(
        log_probs.float().transpose(0, 1),
        targets,
        lengths,
        target_lengths,
        blank=blank,
        reduction="none",
        zero_infinity=True,
    )  # (B,)
    return (losses / target_lengths.clamp_min(1)).sum()


class TrainStep:
    """Runs steps of one training process; ``model`` is ``network`` or its DDP wrapper."""

    def __init__(
        self,
        model: torch.nn.Module,
        network: AcousticModel,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        blank: int,
        grad_clip: float,
        precision: str,
        device: str,
        context: DistributedContext,
        extensions: TrainingExtensions | None = None,
    ):
        """``extensions``: those of the run; the ones that add a loss need a single process."""
        self.model = model
        self.network = network
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.blank = blank
        self.grad_clip = grad_clip
        self.device = device
        self.context = context
        self.extensions = extensions or TrainingExtensions([])
        if self.extensions.adding_loss and context.is_distributed:
            raise AsrError(
                f"the training extension(s) {', '.join(self.extensions.adding_loss)} add a loss, which "
                "needs one process: their parameters are not part of DistributedDataParallel"
            )
        self.device_type = torch.device(device).type
        self.dtype = PRECISIONS[precision]
        # fp16 needs loss scaling so small gradients do not underflow; bf16 has float32's range.
        self.scaler = torch.amp.GradScaler(self.device_type) if precision == "fp16" else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def _sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over all processes (the values themselves in a single process)."""
        if not self.context.is_distributed:
            return values
        return all_reduce_sum(torch.tensor(values, dtype=torch.float64, device=self.device), self.context).tolist()

    def _forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self.autocast():
            return self.model(features.to(self.device), lengths.to(self.device))

    def __call__(self, batch: Batch | None, exhausted: bool = False) -> StepOutcome:
        """Train on this process' share ``batch`` (``None``: nothing usable this step;
        ``exhausted``: no batches left this epoch)."""
        self.optimizer.zero_grad(set_to_none=True)
        count = 0 if batch is None else len(batch.indices)
        # Agree before any forward pass: DDP's forward may itself communicate (it rebuilds its
        # gradient buckets once), so every process must reach it at the same point.
        any_exhausted, utterances = self._sum([float(exhausted), count])
        utterances = int(utterances)
        if any_exhausted:
            return StepOutcome("done")
        if utterances == 0:
            return StepOutcome("empty")
        extra_loss, metrics = None, {}
        if count and self.extensions.adding_loss:  # one process: the network is not wrapped
            with self.autocast():
                encoded, lengths = self.network.encode(
                    batch.features.to(self.device), batch.feature_lengths.to(self.device)
                )
                log_probs = self.network.classify(encoded)
                extra_loss, metrics = self.extensions.extra_loss(encoded, lengths, batch)
            loss_sum = ctc_loss_sum(log_probs, lengths, batch, self.blank)
        elif count:
            log_probs, lengths = self._forward(batch.features, batch.feature_lengths)
            loss_sum = ctc_loss_sum(log_probs, lengths, batch, self.blank)
        else:
            # Nothing of ours in this global batch, but DDP needs every process in backward:
            # a zero-weight pass over a few frames of silence adds nothing to the gradient.
            frames = torch.zeros(1, 2 * self.network.config.subsampling, self.network.feature_config.n_mels)
            log_probs, _ = self._forward(frames, torch.tensor([frames.shape[1]]))
            loss_sum = 0.0 * log_probs.float().sum()
        local_loss = loss_sum.item()
        nonfinite, total_loss = self._sum([float(not math.isfinite(local_loss)), local_loss])
        if nonfinite:
            return StepOutcome("nonfinite_loss", utterances=utterances)
        loss = loss_sum * (self.context.world_size / utterances)
        if extra_loss is not None:
            loss = loss + extra_loss
        (self.scaler.scale(loss) if self.scaler else loss).backward()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, self.grad_clip).item()
        mean_loss = total_loss / utterances
        if self.scaler:
            self.scaler.step(self.optimizer)  # skips the update itself when a gradient overflowed
            self.scaler.update()
            if not math.isfinite(grad_norm):
                return StepOutcome("overflow", mean_loss, grad_norm, utterances)
        elif not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            return StepOutcome("nonfinite_gradient", mean_loss, grad_norm, utterances)
        else:
            self.optimizer.step()
        self.scheduler.step()
        return StepOutcome("trained", mean_loss, grad_norm, utterances, metrics)
