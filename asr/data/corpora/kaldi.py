"""Import a Kaldi data directory (``wav.scp``, ``text``, ``utt2spk``, ``segments``) as a manifest.

- ``wav.scp``: ``<recording-id> <path>``, or one of the two common pipes that
  only decode a file: ``sph2pipe [-f wav] [-p] [-c 1] FILE |`` and
  ``sox FILE [-t wav -r RATE -b BITS -c 1 -e ENCODING] - [remix N] |``. These are
  parsed, never run: the manifest points at FILE, which soundfile reads itself
  (NIST SPHERE included; resampling and mixing down happen when audio is loaded,
  as for any file). Every other command, shell syntax (``$``, ``;``, globs...),
  and an archive offset (``foo.ark:123``) are refused, naming the line; commands
  from a data directory are never run. Relative paths resolve against the
  current folder, as Kaldi's own programs do.
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
import shlex
from pathlib import Path

import soundfile

from asr.data.corpora.common import readable_duration, warn_missing
from asr.data.dataset import Utterance, write_manifest
from asr.utils.errors import AsrError

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


class _Refused(Exception):
    """A wav.scp command that is not one of the decoding pipes asr reads itself; says why."""


_SHELL_SYNTAX = set("$`;&|<>(){}[]*?~!#\\\"'\n")  # left in a word after shlex: the shell would do more
_SOX_OUTPUT_OPTIONS = {"-t", "-r", "-b", "-c", "-e"}  # each takes one value
_SOX_ENCODINGS = {"signed-integer", "signed", "floating-point", "float"}  # PCM of any width: no lossy codec


def _piped_file(command: str) -> tuple[str, int | None]:
    """``(FILE, channel or None)`` of a ``sph2pipe ... FILE`` or ``sox FILE ... -`` command (the
    trailing ``|`` removed) that only decodes FILE; anything else raises :class:`_Refused`."""
    try:
        words = shlex.split(command)
    except ValueError as err:
        raise _Refused(f"cannot be split into words ({err})") from None
    if not words:
        raise _Refused("is empty")
    syntax = sorted(_SHELL_SYNTAX.intersection("".join(words)))
    if syntax:
        raise _Refused(f"uses shell syntax ({' '.join(syntax)})")
    program, args = Path(words[0]).name, words[1:]
    if program == "sph2pipe":
        return _sph2pipe(args)
    if program == "sox":
        return _sox(args)
    raise _Refused(f"runs {words[0]!r}, which is neither sph2pipe nor sox")


def _sph2pipe(args: list[str]) -> tuple[str, int | None]:
    """``sph2pipe [-f wav|rif] [-p] [-c 1|2] FILE``: FILE (a SPHERE file) and the channel."""
    channel, rest = None, list(args)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option == "-p":  # 16-bit PCM out: soundfile decodes u-law itself
            continue
        value = rest.pop(0) if rest else None
        if option == "-f" and value in ("wav", "rif"):
            continue
        if option == "-c" and value in ("1", "2"):
            channel = int(value)
            continue
        raise _Refused(f"passes sph2pipe {option} {value or ''}".rstrip() + " (only -f wav, -p and -c 1|2 are read)")
    if len(rest) != 1:
        raise _Refused("is not 'sph2pipe [options] FILE' writing to the pipe")
    return rest[0], channel


def _sox(args: list[str]) -> tuple[str, int | None]:
    """``sox FILE [-t wav] [-r R] [-b B] [-c 1] [-e E] - [remix N]``: FILE and the channel (remix)."""
    if not args or args[0].startswith("-"):
        raise _Refused("is not 'sox FILE [output options] -' (options before the input file are not read)")
    path, rest, channel = args[0], args[1:], None
    output_type = None
    while rest and rest[0] != "-":
        option = rest.pop(0)
        if not option.startswith("-"):
            raise _Refused(f"makes sox write to {option!r}, not to the pipe ('-')")
        value = rest.pop(0) if rest else ""
        if option not in _SOX_OUTPUT_OPTIONS:
            raise _Refused(f"passes sox {option} (only -t wav, -r, -b, -c 1 and -e are read)")
        valid = {
            "-t": value == "wav",
            "-r": re.fullmatch(r"\d+(\.\d+)?k?", value) is not None,
            "-b": value in ("8", "16", "24", "32"),
            "-c": value == "1",  # mixed down to mono: what loading does anyway
            "-e": value in _SOX_ENCODINGS,
        }[option]
        if not valid:
            raise _Refused(f"passes sox {option} {value}".rstrip())
        if option == "-t":
            output_type = value
    if not rest or output_type != "wav":
        raise _Refused("does not write WAV to the pipe ('-t wav -')")
    effects = rest[1:]
    if effects:
        if len(effects) != 2 or effects[0] != "remix" or not effects[1].isdigit() or int(effects[1]) < 1:
            raise _Refused(f"applies sox effects {' '.join(effects)!r} (only 'remix N', one channel, is read)")
        channel = int(effects[1])
    return path, channel


def _check_channel(path: Path, channel: int | None) -> str | None:
    """Why reading ``path`` whole would not give ``channel`` alone, or ``None``."""
    if channel is None or not path.is_file():
        return None  # a missing or unreadable file is reported as any other
    try:
        channels = soundfile.info(str(path)).channels
    except (soundfile.LibsndfileError, RuntimeError, OSError):
        return None
    if channels == 1 and channel == 1:
        return None
    if channel > channels:
        return f"selects channel {channel} of a {channels}-channel file"
    return (
        f"selects channel {channel} of a {channels}-channel file, and asr reads every channel mixed "
        "to mono: write each channel to its own file (sox FILE out.wav remix N) and list those"
    )


def _shorten_sphere(path: Path) -> bool:
    """A SPHERE file compressed with shorten, which soundfile cannot decode."""
    try:
        with path.open("rb") as stream:
            header = stream.read(1024)
    except OSError:
        return False
    return header.startswith(b"NIST_1A") and b"shorten" in header


def _recording_paths(wav_scp: Path) -> dict[str, Path]:
    """``wav.scp`` -> recording id -> audio path. The decoding pipes asr reads itself resolve to
    their input file; other commands and archive offsets are refused, naming the line."""
    recordings = {}
    for recording, (number, value) in read_table(wav_scp).items():
        where = f"{wav_scp}:{number}: {recording}"
        channel = None
        if value.endswith("|") and not value.startswith("|"):
            try:
                value, channel = _piped_file(value[:-1])
            except _Refused as why:
                raise AsrError(
                    f"{where} is a command ({value!r}) that {why}; asr never runs commands from wav.scp "
                    "(it reads 'sph2pipe -f wav [-p] [-c 1] FILE |' and 'sox FILE -t wav - |' lines itself): "
                    "write the audio to files (e.g. with sox) and list their paths"
                ) from None
        elif value.endswith("|") or value.startswith("|"):
            raise AsrError(
                f"{where} is a command ({value!r}), not a file; asr never runs "
                "commands from wav.scp: write the audio to files (e.g. with sox) and list their paths"
            )
        if ARCHIVE_OFFSET.search(value):
            raise AsrError(f"{where} points into a Kaldi archive ({value!r}); give a file path")
        path = Path(value).expanduser().resolve()
        problem = _check_channel(path, channel)
        if problem:
            raise AsrError(f"{where}: the command {problem}")
        if path.suffix.lower() == ".sph" and path.is_file() and _shorten_sphere(path):
            raise AsrError(
                f"{where}: {path} is shorten-compressed SPHERE, which asr cannot decode without running "
                "sph2pipe; convert the files once (sph2pipe -f wav FILE FILE.wav) and list the .wav files"
            )
        recordings[recording] = path
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
            raise AsrError(
                f"{path}:{number}: {utt_id} has start {start} and end {end} (need 0 <= start < end, or end = -1)"
            )
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
        log.warning(
            "%s: %d utterance(s) have no line in text and were skipped (first: %s)",
            data_dir,
            len(untranscribed),
            untranscribed[0],
        )
    orphans = sorted(set(texts) - set(segments))
    if orphans:
        log.warning(
            "%s: %d line(s) of text name no recording or segment (first: %s)", data_dir, len(orphans), orphans[0]
        )
    return utterances


def import_kaldi(data_dir: str | Path, manifest: str | Path) -> int:
    """Write the utterances of a Kaldi data directory to ``manifest``; returns how many."""
    utterances = read_kaldi_dir(data_dir)
    if not utterances:
        raise AsrError(f"{data_dir}: no utterance has both a transcript and readable audio")
    write_manifest(manifest, utterances)
    return len(utterances)
