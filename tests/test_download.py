"""The recipes' download path, against a local HTTP server on loopback serving a real archive."""

import functools
import http.server
import io
import os
import stat
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from asr.data.corpora.download import extract
from asr.utils.errors import AsrError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def served_yesno(shared_data, tmp_path):
    """A waves_yesno.tar.gz like OpenSLR's (10 real files), served on 127.0.0.1."""
    site = tmp_path / "site"
    site.mkdir()
    files = sorted((shared_data / "yesno" / "waves_yesno").glob("*.wav"))[:10]
    with tarfile.open(site / "waves_yesno.tar.gz", "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=f"waves_yesno/{path.name}")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/waves_yesno.tar.gz"
    server.shutdown()


@pytest.mark.slow
def test_recipe_downloads_and_prepares(served_yesno, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--url", served_yesno, "--stop-stage", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "downloads" / "yesno" / "waves_yesno").is_dir()
    train = (tmp_path / "data" / "yesno" / "train.jsonl").read_text().splitlines()
    assert len(train) == 10  # fewer than 31 files: all of them train
    # a second run reuses the unpacked copy instead of downloading again
    again = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--url", served_yesno + ".gone", "--stop-stage", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr


def test_download_failure_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "download",
            "yesno",
            "--out",
            str(tmp_path / "y"),
            "--url",
            "http://127.0.0.1:9/nothing.tar.gz",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "cannot download http://127.0.0.1:9/nothing.tar.gz" in result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------- hostile archives


def _tar(path, members):
    """A tar of ``(TarInfo fields, payload or None)``; names are written exactly as given."""
    with tarfile.open(path, "w") as tar:
        for fields, payload in members:
            fields = dict(fields)
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _outside(tmp_path, target):
    """Every file under ``tmp_path`` that is neither the archives nor inside ``target``."""
    return sorted(
        str(p)
        for p in tmp_path.rglob("*")
        if not p.is_relative_to(target) and p.suffix not in (".tar", ".zip") and p != target
    )


GOOD = ({"name": "corpus/a.txt"}, b"fine")


@pytest.mark.parametrize(
    "member,problem",
    [
        ({"name": "corpus/../../evil.txt"}, "outside the destination"),
        ({"name": "/tmp/asr-evil-absolute.txt"}, "has an absolute path"),
        ({"name": "corpus/link", "type": tarfile.SYMTYPE, "linkname": "../../outside"}, "outside the destination"),
        ({"name": "corpus/link", "type": tarfile.SYMTYPE, "linkname": "/etc"}, "a link to an absolute path"),
        ({"name": "corpus/hard", "type": tarfile.LNKTYPE, "linkname": "../../outside.txt"}, "outside the destination"),
        ({"name": "corpus/tty", "type": tarfile.CHRTYPE, "devmajor": 5, "devminor": 0}, "is a special file"),
        ({"name": "corpus/fifo", "type": tarfile.FIFOTYPE}, "is a special file"),
    ],
)
def test_hostile_tar_members_are_refused_naming_archive_and_member(tmp_path, member, problem):
    name = member["name"]
    regular = member.get("type", tarfile.REGTYPE) == tarfile.REGTYPE
    (tmp_path / "outside.txt").write_text("precious")
    archive = _tar(tmp_path / "hostile.tar", [GOOD, (member, b"evil" if regular else None)])
    target = tmp_path / "a" / "out"
    with pytest.raises(AsrError) as caught:
        extract(archive, target)
    message = str(caught.value)
    assert message.startswith(f"{archive}: refused to unpack") and repr(name) in message and problem in message
    assert (tmp_path / "outside.txt").read_text() == "precious"
    assert _outside(tmp_path, target) == [str(tmp_path / "a"), str(tmp_path / "outside.txt")]
    assert not Path("/tmp/asr-evil-absolute.txt").exists()
    assert not any(p.is_symlink() or not (p.is_file() or p.is_dir()) for p in target.rglob("*"))


def test_a_link_inside_then_a_write_through_it_is_refused(tmp_path):
    """The two-step escape: a symlink to a folder outside, then a file "inside" the link."""
    (tmp_path / "victim").mkdir()
    archive = _tar(
        tmp_path / "two-step.tar",
        [
            ({"name": "corpus/dir", "type": tarfile.SYMTYPE, "linkname": "../../victim"}, None),
            ({"name": "corpus/dir/planted.txt"}, b"evil"),
        ],
    )
    with pytest.raises(AsrError, match=r"two-step\.tar: refused to unpack: 'corpus/dir'"):
        extract(archive, tmp_path / "out")
    assert list((tmp_path / "victim").iterdir()) == []


def _zip(path, name, payload=b"evil", mode=None):
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("corpus/a.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.create_system = 3  # Unix: the mode is in the high bits of external_attr
            info.external_attr = mode << 16
        zipped.writestr(info, payload)
    return path


@pytest.mark.parametrize(
    "name,mode,problem",
    [
        ("corpus/../../evil.txt", None, "has a '..' component"),
        ("..\\evil.txt", None, "has a '..' component"),
        ("/tmp/asr-evil-absolute.txt", None, "has an absolute path"),
        ("C:/evil.txt", None, "has an absolute path"),
        ("corpus/link", stat.S_IFLNK | 0o777, "is a symbolic link"),
        ("corpus/tty", stat.S_IFCHR | 0o600, "is a special file"),
    ],
)
def test_hostile_zip_members_are_refused_before_anything_is_written(tmp_path, name, mode, problem):
    payload = b"../../outside.txt" if mode and stat.S_ISLNK(mode) else b"evil"  # a link's target is its data
    archive = _zip(tmp_path / "hostile.zip", name, payload, mode)
    target = tmp_path / "out"
    with pytest.raises(AsrError) as caught:
        extract(archive, target)
    assert str(caught.value).startswith(f"{archive}: refused to unpack: member {name!r} {problem}")
    assert list(target.iterdir()) == []  # every member is checked first: nothing unpacked
    assert _outside(tmp_path, target) == []
    assert not Path("/tmp/asr-evil-absolute.txt").exists()


def test_well_formed_archives_still_unpack(tmp_path):
    tar = _tar(
        tmp_path / "ok.tar",
        [
            GOOD,
            ({"name": "corpus/sub/b.txt"}, b"also"),
            ({"name": "corpus/same", "type": tarfile.SYMTYPE, "linkname": "a.txt"}, None),
        ],
    )
    extract(tar, tmp_path / "t")
    assert (tmp_path / "t" / "corpus" / "sub" / "b.txt").read_bytes() == b"also"
    assert (tmp_path / "t" / "corpus" / "same").read_bytes() == b"fine"  # a link that stays inside is kept
    with zipfile.ZipFile(tmp_path / "ok.zip", "w") as zipped:
        zipped.writestr("corpus/a.txt", b"fine")
        zipped.writestr(zipfile.ZipInfo("corpus/empty/"), b"")
    extract(tmp_path / "ok.zip", tmp_path / "z")
    assert (tmp_path / "z" / "corpus" / "a.txt").read_bytes() == b"fine" and (
        tmp_path / "z" / "corpus" / "empty"
    ).is_dir()


def test_asr_download_refuses_a_hostile_archive_in_one_line(tmp_path):
    archive = _tar(tmp_path / "waves_yesno.tar", [({"name": "waves_yesno/../../../evil.txt"}, b"evil")])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "download",
            "yesno",
            "--out",
            str(tmp_path / "d" / "yesno"),
            "--url",
            archive.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "refused to unpack" in result.stderr and "waves_yesno/../../../evil.txt" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert not (tmp_path / "d" / "yesno" / ".complete").exists()
