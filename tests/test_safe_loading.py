"""Safe loading: a model or checkpoint file that would run code when unpickled is refused, and the
code never runs, on every path that reads one (load_model, transcribe, evaluate, train --resume, average);
and a failed write (a full disk) never costs the previous model.pt or last.pt."""

import errno
import os
import subprocess
import sys

import pytest
import torch

from asr.cli.main import main
from asr.data.text import CharTokenizer
from asr.features.logmel import FeatureConfig
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.model.checkpoint import MODEL_FILENAME, MODEL_FORMAT, atomic_save, load_model, package
from asr.train.state import STATE_FILENAME, load_state, save_state
from asr.utils.errors import AsrError


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appearing proves code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_file(path, marker):
    """A file shaped like a packaged model (and a training state) with the payload inside."""
    torch.save({"format": MODEL_FORMAT, "state_dict": {"w": Payload(marker)}, "model": Payload(marker)}, path)
    return path


def test_the_payload_is_real(tmp_path):
    """Loaded the unsafe way, the file does run code: the refusals below are meaningful."""
    marker = tmp_path / "pwned-control"
    malicious_file(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_load_model_refuses_a_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    malicious_file(tmp_path / MODEL_FILENAME, marker)
    with pytest.raises(AsrError, match=r"model\.pt: refused to load: not a plain-tensor checkpoint"):
        load_model(tmp_path)
    assert not marker.exists()


def test_transcribe_refuses_it_with_one_line_and_no_traceback(tmp_path, fsdd_clips):
    marker = tmp_path / "pwned"
    malicious_file(tmp_path / MODEL_FILENAME, marker)
    result = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", str(fsdd_clips / "0_george_10.wav"), "--model", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {tmp_path / MODEL_FILENAME}: refused to load")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == "" and not marker.exists()


def test_every_other_loading_command_refuses_it(tmp_path, fsdd_clips, capsys):
    marker = tmp_path / "pwned"
    exp = tmp_path / "exp"
    exp.mkdir()
    malicious_file(exp / MODEL_FILENAME, marker)
    malicious_file(exp / "last.pt", marker)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f'{{"audio_filepath": "{fsdd_clips / "0_george_10.wav"}", "text": "zero"}}\n')
    config = tmp_path / "conf.toml"
    config.write_text("[features]\nsample_rate = 8000\n[train]\nepochs = 1\n")
    commands = [
        ["evaluate", "--model", str(exp), "--manifest", str(manifest), "--out", str(tmp_path / "eval")],
        [
            "train",
            "--config",
            str(config),
            "--train",
            str(manifest),
            "--dev",
            str(manifest),
            "--exp",
            str(exp),
            "--resume",
        ],
        ["average", str(exp / MODEL_FILENAME), str(exp / MODEL_FILENAME), "--out", str(tmp_path / "avg.pt")],
    ]
    for command in commands:
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "refused to load: not a plain-tensor checkpoint" in err, (command, err)
    assert not marker.exists()
    assert not (tmp_path / "avg.pt").exists()


def _fill_the_disk(obj, f, *args, **kwargs):
    """torch.save as it goes on a full disk: part of the file is written, then ENOSPC."""
    f.write(b"PK\x03\x04 the first bytes of a zip")
    raise OSError(errno.ENOSPC, "No space left on device")


def _fsync_fails(fd):
    raise OSError(errno.ENOSPC, "No space left on device")  # the data did not fit when flushed


@pytest.mark.parametrize("where", ["torch.save", "os.fsync"])
def test_a_full_disk_while_saving_model_pt_leaves_the_previous_one_loadable(tmp_path, monkeypatch, where):
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    network = AcousticModel(
        len(tokenizer), FeatureConfig(sample_rate=8000, n_mels=40), ModelConfig(hidden_size=16, num_layers=1)
    )
    atomic_save(package(network, tokenizer, {"run": "first"}), tmp_path / MODEL_FILENAME)
    before = (tmp_path / MODEL_FILENAME).read_bytes()
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(1.0)
    if where == "torch.save":
        monkeypatch.setattr(torch, "save", _fill_the_disk)
    else:
        monkeypatch.setattr(os, "fsync", _fsync_fails)
    with pytest.raises(OSError, match="No space left on device"):
        atomic_save(package(network, tokenizer, {"run": "second"}), tmp_path / MODEL_FILENAME)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [MODEL_FILENAME]  # no temporary file left behind
    assert (tmp_path / MODEL_FILENAME).read_bytes() == before
    assert load_model(tmp_path).metadata == {"run": "first"}


def test_a_full_disk_while_saving_last_pt_leaves_the_previous_state_resumable(tmp_path, monkeypatch):
    save_state({"epoch": 3, "step": 120, "weights": torch.arange(4.0)}, tmp_path)
    monkeypatch.setattr(torch, "save", _fill_the_disk)
    with pytest.raises(OSError, match="No space left on device"):
        save_state({"epoch": 4, "step": 160, "weights": torch.zeros(4)}, tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILENAME]
    state = load_state(tmp_path)
    assert state["epoch"] == 3 and state["step"] == 120 and torch.equal(state["weights"], torch.arange(4.0))
