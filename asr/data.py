"""Manifests (NeMo-compatible JSON lines), the feature dataset, length-bucketed batches, collate."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from asr.audio import audio_duration, load_audio
from asr.augment import AugmentConfig, crop_to_words, perturb_waveform
from asr.errors import AsrError, ManifestError
from asr.features import LogMel
from asr.text import CharTokenizer, normalize_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    audio_filepath: str  # absolute path of the audio file
    text: str  # transcript as written in the manifest
    duration: float  # seconds
    speaker: str | None = None  # speaker label, when the corpus has one
    id: str | None = None  # utterance id, when the corpus has one

    @property
    def key(self) -> str:
        return self.id or Path(self.audio_filepath).stem

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def write_manifest(path: str | Path, utterances: list[Utterance]) -> None:
    """Write one JSON object per line (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for utt in utterances:
            out.write(json.dumps(utt.to_json(), ensure_ascii=False) + "\n")


def read_manifest(path: str | Path, skip_missing: bool = False) -> list[Utterance]:
    """Read a NeMo-style manifest; relative ``audio_filepath`` resolves against its folder.

    A line that is not a JSON object or lacks ``audio_filepath``/``text`` raises
    :class:`ManifestError` with the line number. A missing audio file raises too,
    unless ``skip_missing``: then the line is skipped and counted in a warning.
    A missing ``duration`` is read from the audio header.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    utterances, missing = [], []
    with path.open(encoding="utf-8", errors="strict") as lines:
        try:
            numbered = list(enumerate(lines, start=1))
        except UnicodeDecodeError as err:
            raise ManifestError(f"{path}: not UTF-8 text ({err})") from None
    for number, line in numbered:
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(row).__name__}")
        for key in ("audio_filepath", "text"):
            if not isinstance(row.get(key), str):
                raise ManifestError(f"{where}: field {key!r} is missing or not a string")
        audio = Path(row["audio_filepath"]).expanduser()
        if not audio.is_absolute():
            audio = path.parent / audio
        if not audio.is_file():
            if skip_missing:
                missing.append(str(audio))
                continue
            raise ManifestError(f"{where}: audio file {audio} does not exist")
        duration = row.get("duration")
        if duration is None:
            duration = audio_duration(audio)
        elif not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0:
            raise ManifestError(f"{where}: 'duration' must be a non-negative number, got {duration!r}")
        speaker = row.get("speaker")
        utt_id = row.get("id")
        utterances.append(
            Utterance(
                audio_filepath=str(audio),
                text=row["text"],
                duration=float(duration),
                speaker=None if speaker is None else str(speaker),
                id=None if utt_id is None else str(utt_id),
            )
        )
    if missing:
        log.warning(
            "%s: skipped %d line(s) whose audio is missing (first: %s)", path, len(missing), missing[0]
        )
    return utterances


class SpeechDataset(Dataset):
    """Utterances -> ``(features (T, F), token ids (L,), index)``.

    With ``augment`` set (training), waveforms are perturbed on every access;
    loaded waveforms are cached in memory, which suits corpora of a few hours.
    Items whose audio cannot be read, or whose text normalises to nothing,
    come back as ``None`` with the reason logged; :func:`collate` drops them.
    """

    def __init__(
        self,
        utterances: list[Utterance],
        log_mel: LogMel,
        tokenizer: CharTokenizer,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ):
        self.utterances = utterances
        self.log_mel = log_mel
        self.tokenizer = tokenizer
        self.augment = augment
        self.seed = seed
        self.epoch = 0  # with ``seed`` and the item, fixes the item's augmentation (see set_epoch)
        self.sample_rate = log_mel.config.sample_rate
        self._cache: dict[int, torch.Tensor] = {}
        self.word_cuts: dict[int, list[int]] = {}  # index -> sample positions between words
        self.failed: dict[str, str] = {}  # audio path -> reason

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int) -> None:
        """Augment as in ``epoch``: an item's perturbation depends only on seed, epoch and index,
        so it is the same in any worker process and after a resume."""
        self.epoch = epoch

    def waveform(self, index: int) -> torch.Tensor:
        if index not in self._cache:
            self._cache[index] = load_audio(self.utterances[index].audio_filepath, self.sample_rate)
        return self._cache[index]

    def __getitem__(self, index: int):
        utt = self.utterances[index]
        try:
            waveform = self.waveform(index)
            text = normalize_text(utt.text)
            if not text:
                raise AsrError(f"{utt.audio_filepath}: transcript {utt.text!r} has no usable characters")
        except AsrError as err:
            if utt.audio_filepath not in self.failed:
                log.warning("skipping utterance: %s", err)
                self.failed[utt.audio_filepath] = str(err)
            return None
        rng = augmentation_rng(self.seed, self.epoch, index)
        if self.augment is not None and index in self.word_cuts and rng.random() < self.augment.crop_prob:
            waveform, text = crop_to_words(waveform, text, self.word_cuts[index], rng)
        features, targets = featurize(waveform, text, self.log_mel, self.tokenizer, self.augment, rng)
        return features, targets, index


def augmentation_rng(seed: int, epoch: int, item: int | str) -> random.Random:
    """The random source for one item's augmentation in one epoch: a pure function of its
    arguments, so no generator state has to travel between processes or checkpoints."""
    return random.Random(f"{seed}/{epoch}/{item}")


def featurize(
    waveform: torch.Tensor,
    text: str,
    log_mel: LogMel,
    tokenizer: CharTokenizer,
    augment: AugmentConfig | None,
    rng: random.Random,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``waveform (N,)`` and normalised ``text`` -> ``features (T, F)`` (perturbed when
    ``augment`` is set) and token ids ``(L,)``."""
    if augment is not None:
        waveform = perturb_waveform(waveform, log_mel.config.sample_rate, augment, rng)
    with torch.no_grad():
        features = log_mel(waveform)  # (T, F)
    return features, tokenizer.encode(text)


@dataclass
class Batch:
    features: torch.Tensor  # (B, T, F) zero-padded
    feature_lengths: torch.Tensor  # (B,)
    targets: torch.Tensor  # (B, L) zero-padded token ids
    target_lengths: torch.Tensor  # (B,)
    indices: list[int]  # dataset indices of the rows


def collate(items) -> Batch | None:
    """Pad a list of dataset items into a :class:`Batch`; ``None`` items are dropped."""
    items = [item for item in items if item is not None]
    if not items:
        return None
    features = torch.nn.utils.rnn.pad_sequence([f for f, _, _ in items], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([t for _, t, _ in items], batch_first=True)
    return Batch(
        features=features,
        feature_lengths=torch.tensor([f.shape[0] for f, _, _ in items]),
        targets=targets,
        target_lengths=torch.tensor([t.shape[0] for _, t, _ in items]),
        indices=[i for _, _, i in items],
    )


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of utterances of similar duration, so padding stays small.

    Utterances are sorted by duration (with a seeded jitter each epoch when
    shuffling) and cut into batches holding at most ``batch_size`` utterances
    and at most ``max_batch_seconds`` of padded audio; the batch order is
    shuffled each epoch. Call :meth:`set_epoch` before iterating.
    """

    def __init__(
        self,
        durations: list[float],
        batch_size: int,
        max_batch_seconds: float,
        shuffle: bool,
        seed: int = 0,
    ):
        self.durations = durations
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100003 + self.epoch)
        jitter = (lambda: rng.uniform(0.95, 1.05)) if self.shuffle else (lambda: 1.0)
        order = sorted(range(len(self.durations)), key=lambda i: self.durations[i] * jitter())
        batches, current, longest = [], [], 0.0
        for index in order:
            longest_if_added = max(longest, self.durations[index])
            if current and (
                len(current) >= self.batch_size
                or longest_if_added * (len(current) + 1) > self.max_batch_seconds
            ):
                batches.append(current)
                current, longest_if_added = [], self.durations[index]
            current.append(index)
            longest = longest_if_added
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class DistributedBucketBatchSampler(BucketBatchSampler):
    """:class:`BucketBatchSampler` for data-parallel training, resumable mid-epoch.

    Every process builds the same global batches (same durations, seed and
    epoch); process ``rank`` of ``num_replicas`` takes every ``num_replicas``-th
    utterance of each, so the shares never overlap and the global batch is the
    one a single process would train on. A share may be empty when a global
    batch holds fewer utterances than there are processes. Iteration starts at
    global batch ``start`` of the epoch (a resumed run sets it).
    """

    def __init__(
        self,
        durations: list[float],
        batch_size: int,
        max_batch_seconds: float,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        num_replicas: int = 1,
    ):
        super().__init__(durations, batch_size, max_batch_seconds, shuffle, seed)
        self.rank = rank
        self.num_replicas = num_replicas
        self.start = 0  # global batches of this epoch already trained on

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches()[self.start :]:
            yield batch[self.rank :: self.num_replicas]
