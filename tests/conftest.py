"""Shared fixtures: real audio from ../shared/data (tests that need it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEMO_FSDD = ROOT / "data" / "fsdd_demo"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (real corpora live beside the project)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fsdd_clips() -> Path:
    """Real FSDD recordings: the embedded demo copy, which always ships."""
    return DEMO_FSDD / "recordings"
