"""The training loop: bucketed batches, AdamW with warm-up and decay, clipping, CTC, checkpoints.

Writes into the experiment directory:

- ``config.toml``   the resolved config (every default filled in)
- ``train.log``     the log of this and any resumed run
- ``tensorboard/``  loss, learning rate and dev WER scalars
- ``last.pt``       the full training state after the latest epoch (for ``--resume``)
- ``model.pt``      the packaged model of the best epoch by dev WER
- ``history.json``  per-epoch train loss, dev loss, dev WER, seconds
- ``curves.png``    train/dev loss and dev WER per epoch, redrawn after every epoch
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.align import align_words
from asr.checkpoint import MODEL_FILENAME, atomic_save, package, safe_load
from asr.config import dump_toml, to_plain_dict
from asr.data import BucketBatchSampler, SpeechDataset, collate, drop_longer_than, read_manifest
from asr.errors import AsrError
from asr.features import LogMel, RunningStatistics
from asr.inference import recognize
from asr.metrics import error_counts
from asr.model import AcousticModel
from asr.plots import plot_training_curves
from asr.text import CharTokenizer, build_tokenizer, normalize_text

if TYPE_CHECKING:
    from asr.experiment import ExperimentConfig

log = logging.getLogger(__name__)


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

    def __post_init__(self):
        if self.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"schedule must be cosine|linear|constant, not {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive")


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


def feature_statistics(dataset: SpeechDataset, max_utterances: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of un-augmented features over (a sample of) the dataset."""
    indices = list(range(len(dataset)))
    random.Random(seed).shuffle(indices)
    stats = RunningStatistics(dataset.log_mel.config.n_mels)
    for index in tqdm(indices[:max_utterances], desc="feature stats", disable=None, leave=False):
        item = dataset[index]
        if item is not None:
            stats.add(item[0])
    return stats.result()


def refresh_word_cuts(network: AcousticModel, dataset: SpeechDataset, tokenizer: CharTokenizer, device: str) -> int:
    """Align every multi-word training utterance with the current model and store the
    sample positions between its words in ``dataset.word_cuts``; returns how many aligned."""
    hop = dataset.log_mel.config.hop_length * network.config.subsampling  # samples per output frame
    network.eval()
    dataset.word_cuts.clear()
    with torch.inference_mode():
        for index, utt in enumerate(dataset.utterances):
            text = normalize_text(utt.text)
            if len(text.split()) < 2 or utt.audio_filepath in dataset.failed:
                continue
            try:
                waveform = dataset.waveform(index)
            except AsrError:  # unreadable audio: the dataset names and skips it when it is drawn
                continue
            features = dataset.log_mel(waveform)[None]  # (1, T, F)
            log_probs, _ = network(features.to(device), torch.tensor([features.shape[1]], device=device))
            spans = align_words(log_probs[0].cpu(), text, tokenizer)
            if len(spans) == len(text.split()):
                dataset.word_cuts[index] = [
                    hop * (left.end + right.start) // 2 for left, right in zip(spans, spans[1:])
                ]
    return len(dataset.word_cuts)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


@dataclass
class TrainResult:
    best_epoch: int  # epoch whose weights are in model.pt
    best_dev_wer: float  # dev WER of that epoch
    epochs_run: int  # epochs completed, resumed ones included
    seconds: float  # wall time of this invocation
    skipped_batches: int  # batches skipped for a non-finite loss


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


def train(
    config: "ExperimentConfig",
    train_manifest: str | Path,
    dev_manifest: str | Path,
    exp_dir: str | Path,
    resume: bool = False,
) -> TrainResult:
    """Train an acoustic model; the best epoch ends up packaged in ``exp_dir/model.pt``."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    with _ExperimentLog(exp_dir / "train.log"):
        return _train(config, Path(train_manifest), Path(dev_manifest), exp_dir, resume)


def _train(config, train_manifest: Path, dev_manifest: Path, exp_dir: Path, resume: bool) -> TrainResult:
    started = time.perf_counter()
    tc: TrainConfig = config.train
    device = _device(tc.device)
    last_path = exp_dir / "last.pt"
    if resume and not last_path.is_file():
        raise AsrError(f"{last_path}: nothing to resume from")
    (exp_dir / "config.toml").write_text(dump_toml(config), encoding="utf-8")
    random.seed(tc.seed)
    torch.manual_seed(tc.seed)

    log_mel = LogMel(config.features)
    train_utts = read_manifest(train_manifest, skip_missing=True)
    train_utts = drop_longer_than(train_utts, tc.max_batch_seconds, "a whole batch, max_batch_seconds")
    dev_utts = read_manifest(dev_manifest, skip_missing=True)
    if not train_utts:
        raise AsrError(f"{train_manifest}: no usable utterances to train on")
    if not dev_utts:
        raise AsrError(f"{dev_manifest}: no usable utterances to validate on")
    tokenizer = build_tokenizer(config.tokenizer, [u.text for u in train_utts])  # BPE: learnt from these
    train_set = SpeechDataset(train_utts, log_mel, tokenizer, augment=config.augment, seed=tc.seed)
    dev_set = SpeechDataset(dev_utts, log_mel, tokenizer)
    dev_references = {i: normalize_text(u.text) for i, u in enumerate(dev_utts)}
    log.info(
        "training on %d utterances (%.1f min), validating on %d (%.1f min), device %s",
        len(train_utts), sum(u.duration for u in train_utts) / 60,
        len(dev_utts), sum(u.duration for u in dev_utts) / 60, device,
    )

    network = AcousticModel(len(tokenizer), config.features, config.model, config.augment)
    if config.features.normalization == "global" and not resume:
        mean, std = feature_statistics(
            SpeechDataset(train_utts, log_mel, tokenizer), tc.stats_utterances, tc.seed
        )
        network.normalizer.set_statistics(mean, std)
    network.to(device)
    num_params = sum(p.numel() for p in network.parameters())
    log.info("model: %s, %.2f M parameters", config.model, num_params / 1e6)

    sampler = BucketBatchSampler(
        [u.duration for u in train_utts], tc.batch_size, tc.max_batch_seconds, shuffle=True, seed=tc.seed
    )
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate)
    total_steps = tc.epochs * len(sampler)
    optimizer = torch.optim.AdamW(network.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, tc)
    )
    ctc = torch.nn.CTCLoss(blank=tokenizer.blank_id, zero_infinity=True)

    history: list[dict] = []
    best = {"epoch": 0, "dev_wer": float("inf"), "dev_loss": float("inf")}
    start_epoch, step, skipped = 1, 0, 0
    if resume:
        state = safe_load(last_path)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best, step, skipped = state["history"], state["best"], state["step"], state["skipped"]
        start_epoch = state["epoch"] + 1
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        train_set.rng.setstate(state["augment_rng"])
        log.info("resumed from %s after epoch %d", last_path, state["epoch"])

    from torch.utils.tensorboard import SummaryWriter  # slow import: only when training

    writer = SummaryWriter(str(exp_dir / "tensorboard"), purge_step=step)
    try:
        for epoch in range(start_epoch, tc.epochs + 1):
            epoch_started = time.perf_counter()
            sampler.set_epoch(epoch)
            if config.augment.crop_prob > 0 and epoch >= config.augment.crop_from_epoch:
                aligned = refresh_word_cuts(network, train_set, tokenizer, device)
                log.info("epoch %d: %d utterances aligned for word cropping", epoch, aligned)
            network.train()
            total_loss, batches = 0.0, 0
            bar = tqdm(loader, desc=f"epoch {epoch}/{tc.epochs}", disable=None, unit="batch", leave=False)
            for batch in bar:
                if batch is None:
                    continue
                log_probs, lengths = network(batch.features.to(device), batch.feature_lengths.to(device))
                loss = ctc(log_probs.transpose(0, 1), batch.targets.to(device), lengths, batch.target_lengths.to(device))
                if not torch.isfinite(loss):
                    skipped += 1
                    log.warning("epoch %d: non-finite loss, batch skipped (%d so far)", epoch, skipped)
                    optimizer.zero_grad(set_to_none=True)
                    continue
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), tc.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                total_loss += loss.item()
                batches += 1
                bar.set_postfix(loss=f"{loss.item():.3f}")
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/grad_norm", grad_norm.item(), step)
                writer.add_scalar("train/learning_rate", scheduler.get_last_lr()[0], step)

            dev = recognize(network, dev_set, tokenizer, device=device, compute_loss=True, description="dev")
            scored = [i for i in dev.hypotheses if dev_references[i]]
            dev_wer = error_counts(
                [dev_references[i] for i in scored], [dev.hypotheses[i] for i in scored]
            ).wer
            record = {
                "epoch": epoch,
                "train_loss": total_loss / max(1, batches),
                "dev_loss": dev.loss,
                "dev_wer": dev_wer,
                "seconds": time.perf_counter() - epoch_started,
            }
            history.append(record)
            writer.add_scalar("dev/loss", dev.loss, step)
            writer.add_scalar("dev/wer", dev_wer, step)
            log.info(
                "epoch %d: train loss %.4f, dev loss %.4f, dev WER %.2f%%, %.1fs",
                epoch, record["train_loss"], dev.loss, 100 * dev_wer, record["seconds"],
            )
            if (dev_wer, dev.loss) < (best["dev_wer"], best["dev_loss"]):
                best = {"epoch": epoch, "dev_wer": dev_wer, "dev_loss": dev.loss}
                metadata = {
                    "config": to_plain_dict(config),
                    "epoch": epoch,
                    "dev_wer": dev_wer,
                    "train_manifest": str(train_manifest),
                    "parameters": num_params,
                }
                atomic_save(package(network, tokenizer, metadata), exp_dir / MODEL_FILENAME)
            atomic_save(
                {
                    "model": network.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "skipped": skipped,
                    "history": history,
                    "best": best,
                    "torch_rng": torch.get_rng_state(),
                    "python_rng": random.getstate(),
                    "augment_rng": train_set.rng.getstate(),
                },
                last_path,
            )
            (exp_dir / "history.json").write_text(json.dumps(history, indent=2), encoding="utf-8")
            plot_training_curves(history, exp_dir / "curves.png")
    finally:
        writer.close()
    log.info("best epoch %d, dev WER %.2f%%", best["epoch"], 100 * best["dev_wer"])
    return TrainResult(
        best_epoch=best["epoch"],
        best_dev_wer=best["dev_wer"],
        epochs_run=len(history),
        seconds=time.perf_counter() - started,
        skipped_batches=skipped,
    )
