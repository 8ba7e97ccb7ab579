"""Never lose work: kill -9 mid-epoch and resume to the same weights, skip non-finite batches,
average checkpoints."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
import torch

from asr.cli.main import main
from asr.data.dataset import Utterance, write_manifest
from asr.features.augment import AugmentConfig
from asr.features.logmel import FeatureConfig
from asr.inference.transcribe import transcribe_file
from asr.model.acoustic import ModelConfig
from asr.model.checkpoint import load_model, safe_load
from asr.train.config import ExperimentConfig, TrainConfig
from asr.train.loop import train

pytestmark = pytest.mark.trains  # every test here trains a model

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# Augmentation and dropout on: a resumed run must restore every random source to match.
CONFIG = """
[features]
sample_rate = 8000
n_mels = 40
[augment]
speed_factors = [0.9, 1.0, 1.1]
noise_prob = 0.5
gain_db = 3.0
freq_masks = 1
freq_mask_width = 5
time_masks = 1
time_mask_width = 5
[model]
frontend = "stack"
subsampling = 2
num_layers = 2
hidden_size = 48
dropout = 0.2
[train]
epochs = 2
batch_size = 2
learning_rate = 3e-3
warmup_steps = 4
seed = 7
checkpoint_every_steps = 3
"""


@pytest.fixture(scope="module")
def clips(fsdd_clips, tmp_path_factory):
    """A manifest of 32 real FSDD clips (16 steps an epoch at batch size 2) and one of 4 for dev."""
    folder = tmp_path_factory.mktemp("clips")
    paths = sorted(fsdd_clips.glob("*_12.wav"))[:36]
    utts = [Utterance(str(p), DIGITS[int(p.name[0])], _duration(p), p.stem.split("_")[1], p.stem) for p in paths]
    write_manifest(folder / "train.jsonl", utts[:32])
    write_manifest(folder / "dev.jsonl", utts[32:])
    (folder / "conf.toml").write_text(CONFIG)
    return folder


def _duration(path: Path) -> float:
    info = soundfile.info(str(path))
    return info.frames / info.samplerate


def _train_command(clips: Path, exp: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "asr",
        "-v",
        "train",
        "--config",
        str(clips / "conf.toml"),
        "--train",
        str(clips / "train.jsonl"),
        "--dev",
        str(clips / "dev.jsonl"),
        "--exp",
        str(exp),
        *extra,
    ]


def test_killed_mid_epoch_resumes_to_the_same_weights(clips, tmp_path):
    # Both runs in processes with one thread: on some CPUs (an AMD EPYC here) the kernels' sums
    # depend on the thread count, so an in-process run on two threads differs in the last bit.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = subprocess.run(
        _train_command(clips, tmp_path / "straight"), capture_output=True, text=True, timeout=300, env=env
    )
    assert straight.returncode == 0, straight.stderr[-3000:]

    # Start the same run, and kill -9 it as soon as it reports a mid-epoch checkpoint.
    process = subprocess.Popen(_train_command(clips, tmp_path / "killed"), stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "training state saved" in line and "at batch position" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL, "".join(seen[-20:])
    assert not (tmp_path / "killed" / "model.pt").exists()  # it died in its first epoch
    interrupted = safe_load(tmp_path / "killed" / "last.pt")
    assert interrupted["epoch"] == 1 and not interrupted["epoch_done"] and interrupted["position"][0] > 0

    resumed = subprocess.run(
        _train_command(clips, tmp_path / "killed", "--resume"), capture_output=True, text=True, timeout=300, env=env
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"in epoch 1 at batch position {interrupted['position'][0]}" in resumed.stderr

    a, b = safe_load(tmp_path / "straight" / "last.pt"), safe_load(tmp_path / "killed" / "last.pt")
    assert a["step"] == b["step"] == 32
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key  # bit for bit
    history_a = json.loads((tmp_path / "straight" / "history.json").read_text())
    history_b = json.loads((tmp_path / "killed" / "history.json").read_text())
    assert [(h["train_loss"], h["dev_wer"]) for h in history_a] == [(h["train_loss"], h["dev_wer"]) for h in history_b]


def tiny_config(epochs: int, **train) -> ExperimentConfig:
    return ExperimentConfig(
        features=FeatureConfig(sample_rate=8000, n_mels=40),
        augment=AugmentConfig(freq_masks=0, time_masks=0),
        model=ModelConfig(frontend="stack", subsampling=2, num_layers=1, hidden_size=32, dropout=0.0),
        train=TrainConfig(epochs=epochs, batch_size=4, learning_rate=1e-2, warmup_steps=2, seed=1, **train),
    )


def test_non_finite_losses_and_gradients_are_skipped_and_counted(clips, tmp_path, monkeypatch, caplog):
    import asr.train.step

    real_loss = asr.train.step.ctc_loss_sum
    calls = {"n": 0}

    def sabotaged(log_probs, lengths, batch, blank):
        calls["n"] += 1
        loss = real_loss(log_probs, lengths, batch, blank)
        if calls["n"] == 2:
            return loss * float("nan")
        if calls["n"] == 5:  # a finite loss whose gradient is NaN (d sqrt(u)/du at u = 0)
            return loss + torch.sqrt(((log_probs - log_probs.detach()) ** 2).sum())
        return loss

    monkeypatch.setattr(asr.train.step, "ctc_loss_sum", sabotaged)
    result = train(tiny_config(epochs=1), clips / "train.jsonl", clips / "dev.jsonl", tmp_path / "exp")
    assert result.skipped_batches == 2
    (record,) = json.loads((tmp_path / "exp" / "history.json").read_text())
    assert record["skipped_batches"] == {"nonfinite_loss": 1, "nonfinite_gradient": 1, "overflow": 0}
    assert safe_load(tmp_path / "exp" / "last.pt")["step"] == 8 - 2  # 8 batches, 2 skipped
    for value in load_model(tmp_path / "exp").network.state_dict().values():
        assert torch.isfinite(value).all()
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "non-finite loss, batch of 4 utterance(s) skipped" in log
    assert "non-finite gradient, batch of 4 utterance(s) skipped" in log


def test_average_last_and_best_checkpoints(clips, tmp_path, fsdd_clips, capsys):
    train(tiny_config(epochs=4, keep_checkpoints=2), clips / "train.jsonl", clips / "dev.jsonl", tmp_path / "exp")
    history = json.loads((tmp_path / "exp" / "history.json").read_text())
    best_two = sorted(sorted(history, key=lambda r: (r["dev_wer"], r["dev_loss"]))[:2], key=lambda r: r["epoch"])
    kept = sorted(p.name for p in (tmp_path / "exp" / "checkpoints").iterdir())
    expected = {3, 4} | {r["epoch"] for r in best_two}
    assert kept == [f"epoch-{e:04d}.pt" for e in sorted(expected)]

    assert main(["average", str(tmp_path / "exp"), "--last", "2", "--out", str(tmp_path / "avg.pt")]) == 0
    assert "epoch-0003.pt, epoch-0004.pt" in capsys.readouterr().out
    snapshots = [safe_load(tmp_path / "exp" / "checkpoints" / f"epoch-000{e}.pt")["state_dict"] for e in (3, 4)]
    averaged = load_model(tmp_path / "avg.pt")
    for key, value in averaged.network.state_dict().items():
        assert torch.allclose(value, (snapshots[0][key] + snapshots[1][key]) / 2, atol=1e-7), key
    assert averaged.metadata["averaged_epochs"] == [3, 4]
    assert transcribe_file(averaged, fsdd_clips / "3_theo_10.wav") is not None

    assert main(["average", str(tmp_path / "exp"), "--best", "2", "--out", str(tmp_path / "best.pt")]) == 0
    assert load_model(tmp_path / "best.pt").metadata["averaged_epochs"] == [r["epoch"] for r in best_two]

    # models of different shapes are refused with a one-line error
    train(
        ExperimentConfig(
            features=FeatureConfig(sample_rate=8000, n_mels=40),
            model=ModelConfig(subsampling=2, num_layers=1, hidden_size=16),
            train=TrainConfig(epochs=1, batch_size=8, seed=1),
        ),
        clips / "dev.jsonl",
        clips / "dev.jsonl",
        tmp_path / "other",
    )
    capsys.readouterr()
    code = main(
        ["average", str(tmp_path / "avg.pt"), str(tmp_path / "other" / "model.pt"), "--out", str(tmp_path / "bad.pt")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "model_config differs" in err
    assert not (tmp_path / "bad.pt").exists()
