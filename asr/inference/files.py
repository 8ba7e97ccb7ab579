"""What ``asr transcribe`` reads and writes: the audio files behind its inputs (files, folders, a
list of paths, a manifest), and each transcript as txt, json, srt or vtt."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from asr.audio.io import audio_files
from asr.data.dataset import manifest_audio_paths
from asr.inference.subtitles import group_words, to_srt, to_vtt
from asr.inference.transcribe import Transcript
from asr.utils.errors import AsrError


@dataclass(frozen=True)
class AudioInput:
    path: str  # the audio file as given, found under a folder given, or named by a manifest
    name: str  # its output file name without the format's suffix: the file's stem, or its path under the folder
    problem: str = ""  # why it cannot be transcribed, known before reading it (a folder without audio files)


def expand(path: str) -> list[AudioInput]:
    """One input: a file (or a missing path) as itself; a folder as every audio file under it,
    sorted, or as one problem naming it when it holds none."""
    folder = Path(path)
    if not folder.is_dir():
        return [AudioInput(path, folder.stem)]
    found = audio_files(folder)
    if not found:
        return [AudioInput(path, folder.name, f"{path}: no audio files under this folder")]
    return [AudioInput(str(file), str(file.relative_to(folder).with_suffix(""))) for file in found]


def read_path_list(source: str) -> list[str]:
    """The paths listed in ``source``, one per line (blank lines skipped); ``-`` reads standard input."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise AsrError(f"{source}: cannot read the list of files ({err})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def gather_inputs(paths: list[str], files_from: str | None = None, manifest: str | None = None) -> list[AudioInput]:
    """The audio to transcribe, in order: ``paths`` (files or folders), then the files or folders
    listed in ``files_from``, then the ``audio_filepath`` of each line of ``manifest``."""
    listed = [*paths, *(read_path_list(files_from) if files_from else [])]
    inputs = [item for path in listed for item in expand(path)]
    if manifest:
        inputs += [AudioInput(path, Path(path).stem) for path in manifest_audio_paths(manifest)]
    return inputs


def render(transcript: Transcript, fmt: str, with_file: bool = False) -> str:
    """``transcript`` as ``fmt`` (no final newline): txt the text (``FILE<TAB>TEXT`` with
    ``with_file``), json one object (text, word timings, segments), srt/vtt subtitles of its words."""
    if fmt == "txt":
        return f"{transcript.file}\t{transcript.text}" if with_file else transcript.text
    if fmt == "json":
        return json.dumps(transcript.to_json(), ensure_ascii=False)
    cues = group_words(transcript.words)
    return (to_srt if fmt == "srt" else to_vtt)(cues).rstrip("\n")


def write_output(folder: str | Path, item: AudioInput, fmt: str, text: str) -> Path:
    """Write ``text`` to ``folder/<item's name>.<fmt>`` (subfolders made as needed) and return that path."""
    target = Path(folder) / f"{item.name}.{fmt}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text + "\n", encoding="utf-8")
    return target
