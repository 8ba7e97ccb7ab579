"""Where a result came from: the versions, commit, threads and text normaliser behind it."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch
import torchaudio

from asr import __version__

NORMALIZER = "asr.data.text.normalize_text"  # references and hypotheses are scored after it


def git_commit(folder: Path = Path(__file__).resolve().parents[2]) -> str | None:
    """The commit of the checkout asr runs from (with ``+changes`` when its tracked files differ
    from it), or None for an installed copy outside git."""
    try:

        def run(*args):
            return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5)

        head = run("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return None
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict:
    """Versions, commit, torch threads and the text normaliser, for summary.json and reports."""
    return {
        "asr": __version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "threads": torch.get_num_threads(),
        "normalizer": NORMALIZER,
    }
