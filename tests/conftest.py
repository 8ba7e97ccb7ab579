"""Shared fixtures: real audio from ../shared/data (tests that need it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr.data.text import CharTokenizer
from asr.features.logmel import FeatureConfig
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.model.checkpoint import MODEL_FILENAME, atomic_save, package

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


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    """A small packaged model with random weights: enough to exercise every code path."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    network = AcousticModel(
        len(tokenizer), FeatureConfig(sample_rate=8000, n_mels=40), ModelConfig(hidden_size=16, num_layers=1)
    )
    folder = tmp_path_factory.mktemp("model")
    atomic_save(package(network, tokenizer, {"note": "untrained"}), folder / MODEL_FILENAME)
    return folder
