"""Manifests (NeMo-compatible JSON lines), the feature dataset, length-bucketed batches, collate."""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from asr.audio.io import audio_duration, load_audio
from asr.data.text import Tokenizer, normalize_text
from asr.features.augment import AugmentConfig, perturb_waveform
from asr.features.logmel import LogMel
from asr.utils.errors import AsrError, ManifestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Utterance:
    audio_filepath: str  # absolute path of the audio file
    text: str  # transcript as written in the manifest
    duration: float  # seconds
    speaker: str | None = None  # speaker label, when the corpus has one
    id: str | None = None  # utterance id, when the corpus has one
    offset: float | None = None  # seconds into the file where the utterance starts; when set, only
    # ``duration`` seconds from there are read (a segment of a longer recording, as in NeMo)

    @property
    def key(self) -> str:
        return self.id or Path(self.audio_filepath).stem

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def load(self, sample_rate: int) -> torch.Tensor:
        """The utterance's waveform ``(num_samples,)``: the whole file, or its segment."""
        if self.offset is None:
            return load_audio(self.audio_filepath, sample_rate)
        return load_audio(self.audio_filepath, sample_rate, offset=self.offset, duration=self.duration)


def write_manifest(path: str | Path, utterances: list[Utterance]) -> None:
    """Write one JSON object per line (UTF-8)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for utt in utterances:
            out.write(json.dumps(utt.to_json(), ensure_ascii=False) + "\n")


MAX_LOGGED_PROBLEMS = 10  # skipped lines named one by one in the log; the rest are counted


class _MissingAudio(ManifestError):
    """A manifest line whose audio file does not exist (skipped and counted when lenient)."""

    def __init__(self, audio: Path):
        super().__init__(f"audio file {audio} does not exist")
        self.audio = audio


def _seconds(row: dict, key: str) -> float | None:
    """A non-negative finite number of seconds from ``row[key]`` (``None`` when absent)."""
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ManifestError(f"{key!r} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _label(row: dict, key: str) -> str | None:
    """An optional string label (``speaker``, ``id``); numbers are accepted and turned into strings."""
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ManifestError(f"{key!r} must be a string, got {value!r}")
    return str(value)


def _audio_path(value: str, manifest: Path) -> Path:
    """A line's ``audio_filepath``: ``~`` expanded, a relative path resolved against the manifest's folder."""
    audio = Path(value).expanduser()
    return audio if audio.is_absolute() else manifest.parent / audio


def _json_object(raw: bytes) -> dict:
    """One manifest line as a JSON object; :class:`ManifestError` (without the line number) otherwise."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ManifestError(f"not UTF-8 text (byte {raw[err.start]:#04x} at column {err.start + 1})") from None
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ManifestError(f"invalid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(row, dict):
        raise ManifestError(f"expected a JSON object, got {type(row).__name__}")
    return row


def _parse_line(raw: bytes, manifest: Path) -> Utterance:
    """One manifest line -> an :class:`Utterance`; raises :class:`ManifestError` (without the
    line number) when it is invalid, :class:`_MissingAudio` when its audio file does not exist."""
    row = _json_object(raw)
    for key in ("audio_filepath", "text"):
        if not isinstance(row.get(key), str):
            raise ManifestError(f"field {key!r} is missing or not a string")
    duration, offset = _seconds(row, "duration"), _seconds(row, "offset")
    speaker, utt_id = _label(row, "speaker"), _label(row, "id")
    audio = _audio_path(row["audio_filepath"], manifest)
    if not audio.is_file():
        raise _MissingAudio(audio)
    if duration is None:
        duration = max(0.0, audio_duration(audio) - (offset or 0.0))
    return Utterance(str(audio), row["text"], duration, speaker, utt_id, offset)


def _manifest_lines(path: Path) -> list[bytes]:
    """The raw lines of a manifest; :class:`ManifestError` naming it when it cannot be read."""
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    try:
        return path.read_bytes().splitlines()
    except OSError as err:
        raise ManifestError(f"{path}: cannot read manifest ({err.strerror})") from None


def manifest_audio_paths(path: str | Path) -> list[str]:
    """The ``audio_filepath`` of every line of a manifest, resolved as :func:`read_manifest` does
    (a line needs no ``text``; whether the files exist is left to whoever reads them). An invalid
    line raises :class:`ManifestError` naming the file and line."""
    path = Path(path)
    paths = []
    for number, raw in enumerate(_manifest_lines(path), start=1):
        if not raw.strip():
            continue
        try:
            row = _json_object(raw)
            if not isinstance(row.get("audio_filepath"), str):
                raise ManifestError("field 'audio_filepath' is missing or not a string")
        except ManifestError as err:
            raise ManifestError(f"{path}, line {number}: {err}") from None
        paths.append(str(_audio_path(row["audio_filepath"], path)))
    return paths


def read_manifest(path: str | Path, skip_missing: bool = False) -> list[Utterance]:
    """Read a NeMo-style manifest; relative ``audio_filepath`` resolves against its folder.

    A line that is not UTF-8, not a JSON object, lacks ``audio_filepath``/``text``,
    has a field of the wrong type, or repeats an earlier line's ``id`` raises
    :class:`ManifestError` naming the file and line; so does a missing audio file.
    With ``skip_missing`` (training, evaluation) such lines are skipped instead, each
    named in a warning, so one bad line costs only itself. A missing ``duration`` is
    read from the audio header; ``offset`` (seconds) makes the line a segment of its file.
    """
    path = Path(path)
    raw_lines = _manifest_lines(path)
    utterances, missing, problems = [], [], []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}, line {number}"
        try:
            utt = _parse_line(raw, path)
            if utt.id is not None:
                if utt.id in first_line_of:
                    raise ManifestError(f"duplicate id {utt.id!r} (first on line {first_line_of[utt.id]})")
                first_line_of[utt.id] = number
        except _MissingAudio as err:
            if not skip_missing:
                raise ManifestError(f"{where}: {err}") from None
            missing.append(str(err.audio))
            continue
        except AsrError as err:  # ManifestError, or AudioError from a header read for the duration
            if not skip_missing:
                raise ManifestError(f"{where}: {err}") from None
            problems.append(f"{where}: {err}")
            if len(problems) <= MAX_LOGGED_PROBLEMS:
                log.warning("%s; line skipped", problems[-1])
            continue
        utterances.append(utt)
    if len(problems) > MAX_LOGGED_PROBLEMS:
        log.warning("%s: %d invalid line(s) skipped in all", path, len(problems))
    if missing:
        log.warning("%s: skipped %d line(s) whose audio is missing (first: %s)", path, len(missing), missing[0])
    return utterances


def drop_longer_than(utterances: list[Utterance], max_seconds: float, reason: str) -> list[Utterance]:
    """``utterances`` without those longer than ``max_seconds``, each dropped one named in a warning."""
    kept = [utt for utt in utterances if utt.duration <= max_seconds]
    dropped = [utt for utt in utterances if utt.duration > max_seconds]
    for utt in dropped[:MAX_LOGGED_PROBLEMS]:
        log.warning(
            "skipped %s (%s): %.0f s is longer than %s (%g s)",
            utt.audio_filepath,
            utt.key,
            utt.duration,
            reason,
            max_seconds,
        )
    if len(dropped) > MAX_LOGGED_PROBLEMS:
        log.warning("skipped %d utterance(s) longer than %s (%g s) in all", len(dropped), reason, max_seconds)
    return kept


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
        tokenizer: Tokenizer,
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
        self.failed: dict[str, str] = {}  # audio path -> reason
        # (index, waveform (N,), normalised text, rng) -> (waveform, text), applied to each item before
        # augmentation; set by a training extension (asr.train.word_crop), picklable for DataLoader workers
        self.edit = None
        # (features (T, F), speaker) -> features; set by asr.speakers.normalization.normalize_speakers and asr.speakers.adaptation
        self.speaker_normalization = None

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int) -> None:
        """Augment as in ``epoch``: an item's perturbation depends only on seed, epoch and index,
        so it is the same in any worker process and after a resume."""
        self.epoch = epoch

    def waveform(self, index: int) -> torch.Tensor:
        if index not in self._cache:
            self._cache[index] = self.utterances[index].load(self.sample_rate)
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
                log.warning("skipping utterance %s: %s", utt.key, err)
                self.failed[utt.audio_filepath] = str(err)
            return None
        rng = augmentation_rng(self.seed, self.epoch, index)
        if self.edit is not None:
            waveform, text = self.edit(index, waveform, text, rng)
        features, targets = featurize(waveform, text, self.log_mel, self.tokenizer, self.augment, rng)
        if self.speaker_normalization is not None:
            features = self.speaker_normalization(features, utt.speaker)
        return features, targets, index


def augmentation_rng(seed: int, epoch: int, item: int | str) -> random.Random:
    """The random source for one item's augmentation in one epoch: a pure function of its
    arguments, so no generator state has to travel between processes or checkpoints."""
    return random.Random(f"{seed}/{epoch}/{item}")


def featurize(
    waveform: torch.Tensor,
    text: str,
    log_mel: LogMel,
    tokenizer: Tokenizer,
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
                len(current) >= self.batch_size or longest_if_added * (len(current) + 1) > self.max_batch_seconds
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
