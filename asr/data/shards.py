"""Tar shards in WebDataset format: write them from a manifest, stream them into training batches.

A shard is a plain tar file; the members of one utterance share a key (the
member name up to the first dot) and sit next to each other::

    shard-000000.tar
        LJ001-0001.flac   the audio file exactly as it was (any format soundfile reads)
        LJ001-0001.json   {"text": "...", "duration": 9.66, "id": "LJ001-0001", "speaker": ...}
        LJ001-0002.flac
        ...

``webdataset.WebDataset`` reads these shards, and shards written by other
WebDataset tools train here when each sample has audio (``flac``, ``wav``,
``ogg``, ``mp3``) and text (``json`` with a ``text`` field, or ``txt``).
``index.json`` beside the shards lists each shard's utterance durations, so
training knows the epoch length without reading the audio; without it the
shards are scanned once.

Training streams shards through :class:`ShardStream`: the shard order is
shuffled each epoch (the same order on every process), shards are dealt to
processes and their DataLoader workers, samples pass a shuffle buffer and then
a length-bucketing buffer, and only the batches that come out are decoded. So a
corpus much larger than memory trains, and a resumed run can skip the batches it
has already trained on without decoding them.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import random
import re
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import braceexpand
import soundfile
import torch
from torch.utils.data import IterableDataset, get_worker_info

from asr.audio.io import decode_audio
from asr.data.dataset import Batch, BucketBatchSampler, Utterance, augmentation_rng, collate, featurize
from asr.data.text import Tokenizer, normalize_text
from asr.features.augment import AugmentConfig
from asr.features.logmel import LogMel
from asr.utils.errors import AsrError

log = logging.getLogger(__name__)

INDEX_FILENAME = "index.json"
INDEX_FORMAT = "asr-shards-1"
AUDIO_EXTENSIONS = ("flac", "wav", "ogg", "mp3")
_REMOTE = re.compile(r"^(https?|file|pipe):")


@dataclass(frozen=True)
class ShardSample:
    key: str  # the members' common name up to the first dot
    audio: bytes  # the encoded audio file
    text: str  # transcript as written
    duration: float  # seconds
    shard: str  # where it came from, for messages

    @property
    def name(self) -> str:
        return f"{self.shard}:{self.key}"


# ----------------------------------------------------------------------------- writing


def write_shards(
    utterances: list[Utterance], out_dir: str | Path, shard_size: int = 1000, shuffle_seed: int | None = 0
) -> dict:
    """Write ``utterances`` as ``out_dir/shard-NNNNNN.tar`` of ``shard_size`` each, plus ``index.json``.

    The utterances are shuffled first (with ``shuffle_seed``; ``None`` keeps their
    order) so every shard is a mix of the corpus. An audio file soundfile cannot
    read is left out with a warning and listed in the index under ``skipped``.
    Returns the index.
    """
    if shard_size < 1:
        raise AsrError(f"shard size must be positive, not {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    utterances = list(utterances)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(utterances)
    keys: set[str] = set()
    shards, skipped, current = [], [], []
    for utt in utterances:
        try:
            info = soundfile.info(utt.audio_filepath)
        except (soundfile.LibsndfileError, RuntimeError) as err:
            log.warning("%s: cannot read audio header (%s), left out of the shards", utt.audio_filepath, err)
            skipped.append(utt.audio_filepath)
            continue
        key = _unique_key(utt.key, keys)
        current.append((key, utt, info.frames / info.samplerate))
        if len(current) == shard_size:
            shards.append(_write_shard(out_dir, len(shards), current))
            current = []
    if current:
        shards.append(_write_shard(out_dir, len(shards), current))
    index = {
        "format": INDEX_FORMAT,
        "utterances": sum(s["utterances"] for s in shards),
        "seconds": round(sum(s["seconds"] for s in shards), 3),
        "shards": shards,
        "skipped": skipped,
    }
    (out_dir / INDEX_FILENAME).write_text(json.dumps(index, indent=1), encoding="utf-8")
    return index


def _unique_key(key: str, taken: set[str]) -> str:
    """A tar key without dots or slashes (WebDataset splits the name at the first dot), unique."""
    base = re.sub(r"[./\\\s]", "_", key) or "utt"
    candidate, number = base, 1
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    taken.add(candidate)
    return candidate


def _write_shard(out_dir: Path, number: int, items: list[tuple[str, Utterance, float]]) -> dict:
    name = f"shard-{number:06d}.tar"
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out, tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for key, utt, duration in items:
                extension = Path(utt.audio_filepath).suffix.lower().lstrip(".") or "wav"
                metadata = {"text": utt.text, "duration": round(duration, 4), "id": utt.key}
                if utt.speaker is not None:
                    metadata["speaker"] = utt.speaker
                _add_member(tar, f"{key}.{extension}", Path(utt.audio_filepath).read_bytes())
                _add_member(tar, f"{key}.json", json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide the corpus from other users
        os.replace(temporary, out_dir / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    durations = [round(d, 4) for _, _, d in items]
    return {"name": name, "utterances": len(items), "seconds": round(sum(durations), 3), "durations": durations}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # fixed metadata: identical input, identical shard
    tar.addfile(info, io.BytesIO(data))


# ----------------------------------------------------------------------------- finding and reading


def is_shard_spec(spec: str) -> bool:
    """True when ``--train`` names shards (a folder, a ``.tar``, a ``{a..b}`` pattern or a URL)."""
    return bool(_REMOTE.match(spec)) or "{" in spec or spec.endswith(".tar") or Path(spec).is_dir()


def expand_shard_spec(spec: str) -> list[str]:
    """Shard paths/URLs from a folder (its ``*.tar``), a brace pattern
    (``data/shard-{000000..000009}.tar``), one path or URL, or several joined by spaces."""
    urls = []
    for part in spec.split():
        if not _REMOTE.match(part) and Path(part).is_dir():
            found = sorted(str(p) for p in Path(part).glob("*.tar"))
            if not found:
                raise AsrError(f"{part}: no .tar shards in this folder")
            urls.extend(found)
        else:
            urls.extend(braceexpand.braceexpand(part))
    for url in urls:
        if not _REMOTE.match(url) and not Path(url).is_file():
            raise AsrError(f"{url}: no such shard")
    if not urls:
        raise AsrError(f"{spec!r} names no shards")
    return urls


@contextmanager
def open_shard(url: str) -> Iterator[BinaryIO]:
    """A readable byte stream of a local path, ``file:``, ``http(s):`` or ``pipe:COMMAND`` shard."""
    if url.startswith("pipe:"):
        process = subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE)
        try:
            yield process.stdout
            process.stdout.read()  # drain: a writer cut off before its end would fail with a broken pipe
        finally:
            process.stdout.close()
            process.wait()
        if process.returncode != 0:
            raise OSError(f"command exited with status {process.returncode}")
    elif url.startswith(("http:", "https:", "file:")):
        with urllib.request.urlopen(url) as response:
            yield response
    else:
        with open(url, "rb") as stream:
            yield stream


def iterate_samples(url: str) -> Iterator[ShardSample]:
    """The utterances of one shard in file order; incomplete samples and an unreadable rest of
    the shard are logged and skipped, the samples read so far are kept.

    The shard is read as a stream, in memory: nothing is ever extracted to disk. A member that
    is not a regular file (a link, a device, a pipe; folder entries are passed over) or whose
    name is absolute or has a ``..`` component raises :class:`AsrError` naming the shard and
    the member: such a tar is not a shard this toolkit wrote, nor one WebDataset tools write.
    """
    count = 0
    try:
        with open_shard(url) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for key, fields in _grouped_members(tar, url):
                sample = _sample(url, key, fields)
                if sample is not None:
                    count += 1
                    yield sample
    except (tarfile.TarError, OSError, EOFError) as err:
        log.warning("%s: unreadable after %d utterance(s) (%s); the rest of this shard is skipped", url, count, err)


def _member_problem(member: tarfile.TarInfo) -> str | None:
    """Why a shard member is refused, or ``None`` for a regular file with a safe relative name."""
    name = member.name
    if not member.isfile():
        kind = (
            "a symbolic link"
            if member.issym()
            else "a hard link"
            if member.islnk()
            else "a device file"
            if member.ischr() or member.isblk()
            else "a named pipe"
            if member.isfifo()
            else "not a regular file"
        )
        return f"is {kind}"
    if not name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path" if name else "has no name"
    if ".." in re.split(r"[/\\]", name):
        return "has a '..' component"
    return None


def _grouped_members(tar: tarfile.TarFile, url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {extension: bytes})`` for each run of consecutive members sharing a key
    (the member path up to the first dot of its file name, as WebDataset defines it); read in
    memory, never extracted. An unsafe member raises :class:`AsrError` (see :func:`iterate_samples`)."""
    key, fields = None, {}
    for member in tar:
        if member.isdir():
            continue  # a folder entry (tar cf shard.tar folder/) holds no data
        problem = _member_problem(member)
        if problem:
            raise AsrError(
                f"{url}: member {member.name!r} {problem}; a shard holds only regular files "
                "with relative names (refused: the shard is not read further)"
            )
        folder, _, filename = member.name.rpartition("/")
        stem, _, extension = filename.partition(".")
        member_key = f"{folder}/{stem}" if folder else stem
        if member_key != key and key is not None:
            yield key, fields
            fields = {}
        key = member_key
        fields[extension.lower()] = tar.extractfile(member).read()
    if key is not None:
        yield key, fields


def _sample(url: str, key: str, fields: dict[str, bytes]) -> ShardSample | None:
    where = f"{url}:{key}"
    audio = next((fields[ext] for ext in AUDIO_EXTENSIONS if ext in fields), None)
    try:
        if audio is None:
            raise AsrError(f"no audio member ({', '.join(AUDIO_EXTENSIONS)})")
        metadata = json.loads(fields["json"].decode("utf-8")) if "json" in fields else {}
        if not isinstance(metadata, dict):
            raise AsrError("the .json member is not an object")
        text = metadata.get("text", fields["txt"].decode("utf-8").strip() if "txt" in fields else None)
        if not isinstance(text, str):
            raise AsrError("no transcript (a .json with a 'text' string, or a .txt)")
        duration = metadata.get("duration")
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0:
            info = soundfile.info(io.BytesIO(audio))
            duration = info.frames / info.samplerate
    except (AsrError, ValueError, UnicodeDecodeError, soundfile.LibsndfileError, RuntimeError) as err:
        log.warning("%s: sample skipped (%s)", where, err)
        return None
    return ShardSample(key=key, audio=audio, text=text, duration=float(duration), shard=url)


def shard_durations(urls: list[str]) -> list[float]:
    """Every utterance's duration, from ``index.json`` beside the shards where it lists them,
    otherwise by reading the shards once (headers only)."""
    index = _read_index(urls[0])
    listed = {s["name"]: s["durations"] for s in index.get("shards", [])} if index else {}
    durations, unlisted = [], []
    for url in urls:
        name = url.rstrip("/").rsplit("/", 1)[-1]
        if name in listed:
            durations.extend(listed[name])
        else:
            unlisted.append(url)
    if unlisted:
        log.warning("%d shard(s) not in an %s; reading them to count utterances", len(unlisted), INDEX_FILENAME)
        for url in unlisted:
            durations.extend(sample.duration for sample in iterate_samples(url))
    return durations


def _read_index(url: str) -> dict | None:
    if url.startswith("pipe:"):
        return None
    location = url.rsplit("/", 1)[0] + "/" + INDEX_FILENAME if "/" in url else INDEX_FILENAME
    try:
        if _REMOTE.match(location):
            with urllib.request.urlopen(location) as response:
                index = json.loads(response.read().decode("utf-8"))
        else:
            if not Path(location).is_file():
                return None
            index = json.loads(Path(location).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        log.warning("%s: cannot read shard index (%s)", location, err)
        return None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        log.warning("%s: not an asr shard index; ignored", location)
        return None
    return index


# ----------------------------------------------------------------------------- training stream


def shuffled(items: Iterable, buffer_size: int, rng: random.Random) -> Iterator:
    """Shuffle a stream through a buffer of ``buffer_size`` items (1 = no shuffling)."""
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        slot = rng.randrange(buffer_size)
        yield buffer[slot]
        buffer[slot] = item
    rng.shuffle(buffer)
    yield from buffer


def bucketed(
    samples: Iterable[ShardSample], buffer_size: int, batch_size: int, max_batch_seconds: float, rng: random.Random
) -> Iterator[list[ShardSample]]:
    """Batches of similar duration: every ``buffer_size`` samples are sorted by duration (with
    jitter), cut like :class:`~asr.data.dataset.BucketBatchSampler` cuts a manifest, and the batches shuffled."""

    def cut(buffer: list[ShardSample]) -> Iterator[list[ShardSample]]:
        sampler = BucketBatchSampler(
            [s.duration for s in buffer], batch_size, max_batch_seconds, shuffle=True, seed=rng.getrandbits(32)
        )
        for batch in sampler.batches():
            yield [buffer[i] for i in batch]

    buffer = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) == buffer_size:
            yield from cut(buffer)
            buffer = []
    if buffer:
        yield from cut(buffer)


class ShardStream(IterableDataset):
    """Training batches streamed from shards; yields ``(worker id, Batch or None)``.

    Each epoch every process shuffles the shard list the same way (from ``seed``
    and the epoch) and takes its share (:meth:`samples`). Batches hold
    at most ``batch_size`` utterances and ``max_batch_seconds`` of padded audio
    (the per-process share of a global batch). ``None`` stands for a batch whose
    utterances all failed to decode (each is logged). ``skip[w]`` batches of
    worker ``w`` are passed over without decoding (a resumed epoch).
    """

    def __init__(
        self,
        urls: list[str],
        log_mel: LogMel,
        tokenizer: Tokenizer,
        augment: AugmentConfig | None,
        batch_size: int,
        max_batch_seconds: float,
        shuffle_buffer: int = 500,
        bucket_buffer: int = 500,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        self.urls = list(urls)
        self.log_mel = log_mel
        self.tokenizer = tokenizer
        self.augment = augment
        self.batch_size = batch_size
        self.max_batch_seconds = max_batch_seconds
        self.shuffle_buffer = shuffle_buffer
        self.bucket_buffer = bucket_buffer
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip: list[int] = []
        self.first_worker = 0

    def set_epoch(self, epoch: int, skip: list[int] | None = None, first_worker: int = 0) -> None:
        """Stream ``epoch``, passing over ``skip[w]`` batches of worker ``w``. The DataLoader
        always asks its worker process 0 first; ``first_worker`` is the worker whose turn it
        is (a resumed epoch), so process 0 plays that worker and the round continues unchanged."""
        self.epoch = epoch
        self.skip = list(skip or [])
        self.first_worker = first_worker

    def shard_order(self) -> list[str]:
        """This epoch's shard order, the same on every process."""
        order = list(self.urls)
        random.Random(f"{self.seed}/{self.epoch}/shards").shuffle(order)
        return order

    def samples(self, worker: int, workers: int) -> Iterator[ShardSample]:
        """DataLoader worker ``worker`` of ``workers`` (in this process): its share of this
        epoch's utterances, before shuffling.

        Processes get equally many whole shards; the ``len % world_size`` shards left over are
        not read this epoch (the order changes every epoch, so a different few each time), so
        that all processes run out of data at about the same step. With fewer shards than
        processes, every process reads every shard and keeps every ``world_size``-th utterance.
        Within a process, workers split its shards the same way (without leaving any out).
        """
        order = self.shard_order()
        if len(order) >= self.world_size:
            usable = len(order) // self.world_size * self.world_size
            urls, by_utterance = order[:usable][self.rank :: self.world_size], False
        else:
            urls, by_utterance = order, True
        worker_by_utterance = by_utterance or len(urls) < workers
        if not worker_by_utterance:
            urls = urls[worker::workers]
        stream = itertools.chain.from_iterable(iterate_samples(url) for url in urls)
        if by_utterance:
            stream = itertools.islice(stream, self.rank, None, self.world_size)
        if worker_by_utterance:
            stream = itertools.islice(stream, worker, None, workers)
        return stream

    def __iter__(self) -> Iterator[tuple[int, Batch | None]]:
        worker = get_worker_info()
        process_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        worker_id = (process_id + self.first_worker) % num_workers
        rng = random.Random(f"{self.seed}/{self.epoch}/rank{self.rank}/worker{worker_id}")
        stream = shuffled(self.samples(worker_id, num_workers), self.shuffle_buffer, rng)
        batches = bucketed(stream, self.bucket_buffer, self.batch_size, self.max_batch_seconds, rng)
        skip = self.skip[worker_id] if worker_id < len(self.skip) else 0
        for number, batch in enumerate(batches):
            if number >= skip:
                yield worker_id, collate([self._item(sample, position) for position, sample in enumerate(batch)])

    def _item(self, sample: ShardSample, position: int):
        """``(features (T, F), token ids (L,), position)`` or ``None`` (logged) when unusable."""
        try:
            text = normalize_text(sample.text)
            if not text:
                raise AsrError(f"{sample.name}: transcript {sample.text!r} has no usable characters")
            waveform = decode_audio(sample.audio, sample.name, self.log_mel.config.sample_rate)
            rng = augmentation_rng(self.seed, self.epoch, sample.key)
            features, targets = featurize(waveform, text, self.log_mel, self.tokenizer, self.augment, rng)
        except (AsrError, ValueError) as err:
            log.warning("skipping utterance: %s", err)
            return None
        return features, targets, position


def shard_features(urls: list[str], log_mel: LogMel, limit: int, seed: int) -> Iterator[torch.Tensor]:
    """Un-augmented features ``(T, F)`` of the first ``limit`` readable utterances, shards in a
    seeded order (for the global normalisation statistics)."""
    order = list(urls)
    random.Random(seed).shuffle(order)
    produced = 0
    for url in order:
        for sample in iterate_samples(url):
            if produced >= limit:
                return
            try:
                waveform = decode_audio(sample.audio, sample.name, log_mel.config.sample_rate)
            except AsrError as err:
                log.warning("skipping utterance: %s", err)
                continue
            with torch.no_grad():
                yield log_mel(waveform)
            produced += 1
