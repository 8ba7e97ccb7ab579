"""Import a Kaldi data directory (``wav.scp``, ``text``, ``utt2spk``, ``segments``) as a manifest.

- ``wav.scp``: ``<recording-id> <path>``. Only plain paths: a pipe command
  (``sox ... |``) or an archive offset (``foo.ark:123``) is refused, naming the
  line; commands from a data directory are never run. Relative paths resolve
  against the current folder, as Kaldi's own programs do.
- ``text``: ``<utterance-id> <transcript>``.
- ``utt2spk`` (optional): ``<utterance-id> <speaker-id>``.
- ``segments`` (optional): ``<utterance-id> <recording-id> <start> <end>`` in
  seconds (``end = -1``: to the end of the recording); each utterance becomes a
  manifest line with ``offset`` = start and ``duration`` = end - start, as in NeMo.
  Without ``segments`` every recording is one utterance with the same id.

Utterances without a transcript, without audio, or whose audio cannot be read
are skipped with a warning, like Kaldi's ``fix_data_dir.sh``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from asr.corpora.common import readable_duration, warn_missing
from asr.data import Utterance, write_manifest
from asr.errors import AsrError

log = logging.getLogger(__name__)

ARCHIVE_OFFSET = re.compile(r"\.ark:\d+$")


def read_table(path: Path, columns: int | None = None) -> dict[str, tuple[int, str]]:
    """``<key> <value...>`` lines -> ``{key: (line number, value)}``.

    ``columns`` (when given) is the exact number of whitespace-separated fields.
    A line without a value, with the wrong number of fields, a repeated key or
    bytes that are not UTF-8 raises :class:`AsrError` naming the file and line.
    """
    table: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise AsrError(f"{path}:{number}: not UTF-8 text") from None
        if not line:
            continue
        fields = line.split(maxsplit=1)
        if len(fields) < 2 or (columns is not None and len(line.split()) != columns):
            expected = f"{columns} fields" if columns else "'<id> <value>'"
            raise AsrError(f"{path}:{number}: expected {expected}, got {line!r}")
        key, value = fields
        if key in table:
            raise AsrError(f"{path}:{number}: {key!r} repeats line {table[key][0]}")
        table[key] = (number, value)
    return table


def _recording_paths(wav_scp: Path) -> dict[str, Path]:
    """``wav.scp`` -> recording id -> audio path; commands and archive offsets are refused."""
    recordings = {}
    for recording, (number, value) in read_table(wav_scp).items():
        if value.endswith("|") or value.startswith("|"):
            raise AsrError(
                f"{wav_scp}:{number}: {recording} is a command ({value!r}), not a file; asr never runs "
                "commands from wav.scp: write the audio to files (e.g. with sox) and list their paths"
            )
        if ARCHIVE_OFFSET.search(value):
            raise AsrError(f"{wav_scp}:{number}: {recording} points into a Kaldi archive ({value!r}); give a file path")
        recordings[recording] = Path(value).expanduser().resolve()
    return recordings


def _segments(path: Path, recordings: dict[str, Path]) -> dict[str, tuple[str, float, float]]:
    """``segments`` -> utterance id -> (recording id, start, end or -1), checked."""
    segments = {}
    for utt_id, (number, value) in read_table(path, columns=4).items():
        recording, start_text, end_text = value.split()
        try:
            start, end = float(start_text), float(end_text)
        except ValueError:
            raise AsrError(f"{path}:{number}: start and end must be seconds, got {start_text!r} {end_text!r}") from None
        if start < 0 or (end != -1 and end <= start):
            raise AsrError(f"{path}:{number}: {utt_id} has start {start} and end {end} (need 0 <= start < end, or end = -1)")
        if recording not in recordings:
            raise AsrError(f"{path}:{number}: recording {recording!r} is not in wav.scp")
        segments[utt_id] = (recording, start, end)
    return segments


def read_kaldi_dir(data_dir: str | Path) -> list[Utterance]:
    """The utterances of a Kaldi data directory, in utterance-id order."""
    data_dir = Path(data_dir)
    for required in ("wav.scp", "text"):
        if not (data_dir / required).is_file():
            raise AsrError(f"{data_dir}: not a Kaldi data directory (no {required})")
    recordings = _recording_paths(data_dir / "wav.scp")
    texts = read_table(data_dir / "text")
    speakers = read_table(data_dir / "utt2spk", columns=2) if (data_dir / "utt2spk").is_file() else {}
    segmented = (data_dir / "segments").is_file()
    if segmented:
        segments = _segments(data_dir / "segments", recordings)
    else:
        segments = {recording: (recording, 0.0, -1.0) for recording in recordings}

    durations: dict[str, float | None] = {}
    utterances, missing, untranscribed = [], [], []
    for utt_id in sorted(segments):
        recording, start, end = segments[utt_id]
        if utt_id not in texts:
            untranscribed.append(utt_id)
            continue
        audio = recordings[recording]
        if not audio.is_file():
            missing.append(str(audio))
            continue
        if recording not in durations:
            durations[recording] = readable_duration(audio)
        total = durations[recording]
        if total is None:
            continue
        if start >= total:
            log.warning("skipped %s: starts at %g s, after the end of %s (%g s)", utt_id, start, audio, total)
            continue
        utterances.append(
            Utterance(
                audio_filepath=str(audio),
                text=texts[utt_id][1],
                duration=round((min(end, total) if end != -1 else total) - start, 4),
                speaker=speakers[utt_id][1] if utt_id in speakers else None,
                id=utt_id,
                offset=start if segmented else None,
            )
        )
    warn_missing(f"kaldi {data_dir}", missing)
    if untranscribed:
        log.warning("%s: %d utterance(s) have no line in text and were skipped (first: %s)",
                    data_dir, len(untranscribed), untranscribed[0])
    orphans = sorted(set(texts) - set(segments))
    if orphans:
        log.warning("%s: %d line(s) of text name no recording or segment (first: %s)", data_dir, len(orphans), orphans[0])
    return utterances


def import_kaldi(data_dir: str | Path, manifest: str | Path) -> int:
    """Write the utterances of a Kaldi data directory to ``manifest``; returns how many."""
    utterances = read_kaldi_dir(data_dir)
    if not utterances:
        raise AsrError(f"{data_dir}: no utterance has both a transcript and readable audio")
    write_manifest(manifest, utterances)
    return len(utterances)
