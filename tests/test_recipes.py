"""End-to-end recipe runs on real audio (slow: they train a model)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_yesno_recipe_end_to_end(shared_data, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--src", str(shared_data / "yesno")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "exp" / "yesno" / "eval_test" / "summary.json").read_text())
    assert summary["num_utterances"] == 29 and summary["num_words"] == 232
    assert summary["wer"] <= 0.02  # the recipe README records the measured figure
    transcript = result.stdout.strip().splitlines()[-1].split()  # stage 4 prints last
    assert len(transcript) == 8 and set(transcript) <= {"yes", "no"}
