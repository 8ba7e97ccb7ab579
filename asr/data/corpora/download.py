"""Fetch a corpus archive over HTTP(S) and unpack it safely."""

from __future__ import annotations

import re
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PureWindowsPath

from asr.utils.errors import AsrError
from asr.utils.progress import progress as progress_bar


def download(url: str, destination: Path, progress: bool = True) -> Path:
    """Download ``url`` to ``destination`` (skipped when it already exists), via a temporary file."""
    if destination.is_file():
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=destination.name, enabled=progress) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        raise AsrError(f"cannot download {url}: {err}") from None
    partial.replace(destination)
    return destination


def _zip_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member must not be unpacked, or ``None``: an absolute path (``/x``, ``C:x``), a
    ``..`` component (with either slash), or an entry that is not a plain file or folder."""
    name = info.filename
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return "has an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "has a '..' component"
    kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix mode, where the archiver recorded one
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file (a device, pipe or socket)"
    return None


def _tar_filter(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter (no ``..`` or links leaving the folder, no devices, no odd
    permissions), and absolute names refused instead of having their leading slash removed."""
    if member.name.startswith(("/", "\\")) or PureWindowsPath(member.name).drive:
        raise tarfile.AbsolutePathError(member)
    return tarfile.data_filter(member, path)


def extract(archive: Path, out_dir: Path) -> None:
    """Unpack a .tar(.gz/.bz2/.xz) or .zip archive into ``out_dir``, refusing every member that
    would write outside it: absolute paths, ``..``, links leading out, devices (tar), links (zip).

    A refused member raises :class:`AsrError` naming the archive and the member.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():  # all checked before anything is written
                    problem = _zip_problem(info)
                    if problem:
                        raise AsrError(f"{archive}: refused to unpack: member {info.filename!r} {problem}")
                zipped.extractall(out_dir)
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(out_dir, filter=_tar_filter)
    except tarfile.FilterError as err:
        raise AsrError(f"{archive}: refused to unpack: {err}") from None  # the message names the member
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
        raise AsrError(f"{archive}: cannot unpack ({err})") from None


def _archive_name(url: str) -> str:
    return url.rstrip("/").split("/")[-1] or "corpus.tar.gz"


def _corpus_root(out_dir: Path) -> Path:
    """The single top-level folder of what was unpacked, if there is one; else ``out_dir``."""
    entries = [p for p in out_dir.iterdir() if not p.name.startswith(".complete")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else out_dir


def fetch(url: str, out_dir: str | Path, progress: bool = True) -> Path:
    """Download and unpack ``url`` into ``out_dir``; a second call reuses the unpacked copy.

    Returns the corpus root: the single top-level folder of the archive, if it has one.
    """
    out_dir = Path(out_dir)
    marker = out_dir / ".complete"
    if not marker.is_file():
        archive = download(url, out_dir.parent / f"{out_dir.name}-{_archive_name(url)}", progress)
        extract(archive, out_dir)
        marker.write_text(url + "\n")
        archive.unlink()
    return _corpus_root(out_dir)


def fetch_many(urls: list[str], out_dir: str | Path, progress: bool = True) -> Path:
    """Download and unpack several archives into one folder (LibriSpeech's subsets all unpack
    into ``LibriSpeech/``); each archive is fetched once, so adding a subset later fetches only it.

    Returns the corpus root as :func:`fetch` does.
    """
    out_dir = Path(out_dir)
    for url in urls:
        name = _archive_name(url)
        marker = out_dir / f".complete-{name}"
        if marker.is_file():
            continue
        archive = download(url, out_dir.parent / f"{out_dir.name}-{name}", progress)
        extract(archive, out_dir)
        marker.write_text(url + "\n")
        archive.unlink()
    return _corpus_root(out_dir)
