"""The command line as a user meets it: transcribe with a bad file among good ones, --help, errors."""

import json
import subprocess
import sys

import pytest
import torch

from asr.model.checkpoint import MODEL_FILENAME, load_model
from asr.utils.errors import AsrError


def asr(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


def test_transcribe_reports_a_bad_file_and_keeps_the_others(untrained_model, fsdd_clips, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    good = [fsdd_clips / "0_george_10.wav", fsdd_clips / "7_theo_12.wav"]
    result = asr("transcribe", good[0], corrupt, empty, tmp_path / "missing.wav", good[1], "--model", untrained_model)
    assert result.returncode == 1
    out_lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in out_lines] == [str(good[0]), str(good[1])]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3, result.stderr
    assert "corrupt.wav" in errors[0] and "empty.flac" in errors[1] and "missing.wav: no such file" in errors[2]
    assert all(line.startswith("error: ") for line in errors)
    assert "Traceback" not in result.stderr


def test_transcribe_json_and_single_file(untrained_model, fsdd_clips):
    result = asr("transcribe", fsdd_clips / "3_yweweler_15.wav", "--model", untrained_model / MODEL_FILENAME, "--format", "json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["file"].endswith("3_yweweler_15.wav") and isinstance(row["text"], str)


def test_help_and_bad_config(tmp_path):
    result = asr("train", "--help")
    assert result.returncode == 0 and "--resume" in result.stdout and "--config" in result.stdout
    config = tmp_path / "c.toml"
    config.write_text("[train]\nepochs = 1\nlearnig_rate = 0.1\n")
    result = asr("train", "--config", config, "--train", "x.jsonl", "--dev", "y.jsonl", "--exp", tmp_path / "exp")
    assert result.returncode == 2
    assert "unknown key 'learnig_rate'" in result.stderr and "Traceback" not in result.stderr


def test_missing_model_is_a_clear_error(tmp_path, fsdd_clips):
    result = asr("transcribe", fsdd_clips / "0_george_10.wav", "--model", tmp_path)
    assert result.returncode == 2
    assert "no such model" in result.stderr


def test_checkpoints_load_without_unpickling_code(untrained_model, tmp_path):
    model = load_model(untrained_model)
    assert model.sample_rate == 8000 and model.metadata == {"note": "untrained"}

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    hostile = tmp_path / "hostile.pt"
    torch.save({"format": "asr-model-1", "payload": Exploit()}, hostile)
    with pytest.raises(AsrError, match="refused to load"):
        load_model(hostile)
