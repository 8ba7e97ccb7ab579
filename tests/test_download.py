"""The recipes' download path, against a local HTTP server on loopback serving a real archive."""

import functools
import http.server
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

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


def test_recipe_downloads_and_prepares(served_yesno, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--url", served_yesno, "--stop-stage", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "downloads" / "yesno" / "waves_yesno").is_dir()
    train = (tmp_path / "data" / "yesno" / "train.jsonl").read_text().splitlines()
    assert len(train) == 10  # fewer than 31 files: all of them train
    # a second run reuses the unpacked copy instead of downloading again
    again = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--url", served_yesno + ".gone", "--stop-stage", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr


def test_download_failure_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "asr", "download", "yesno", "--out", str(tmp_path / "y"),
         "--url", "http://127.0.0.1:9/nothing.tar.gz"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "cannot download http://127.0.0.1:9/nothing.tar.gz" in result.stderr
    assert "Traceback" not in result.stderr
