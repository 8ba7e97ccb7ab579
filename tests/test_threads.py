"""How many threads torch computes with: --threads, OMP_NUM_THREADS, else the free cores."""

import os
from pathlib import Path

import pytest
import torch

from asr.cli.main import main
from asr.data.dataset import Utterance, write_manifest
from asr.model.checkpoint import MODEL_FILENAME
from asr.utils import threads
from asr.utils.threads import cgroup_cpu_quota, choose_threads, other_runnable, usable_cores

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "recipes" / "fsdd" / "demo.toml"


@pytest.fixture
def torch_threads():
    """Put torch's thread count back after a test that changes it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_an_explicit_number_wins_over_the_environment_and_the_cores():
    choice = choose_threads(3, environ={"OMP_NUM_THREADS": "1"}, cores=2, machine_cores=2, others=5)
    assert (choice.threads, choice.reason) == (3, "--threads")
    with pytest.raises(ValueError):
        choose_threads(0)


def test_omp_num_threads_is_honoured_when_set_and_valid():
    assert choose_threads(environ={"OMP_NUM_THREADS": "5"}, cores=2, machine_cores=2, others=0).threads == 5
    assert choose_threads(environ={"OMP_NUM_THREADS": "1,2"}, cores=4, machine_cores=4, others=0).threads == 1
    for unusable in ("", "0", "many"):  # ignored: the automatic choice
        assert choose_threads(environ={"OMP_NUM_THREADS": unusable}, cores=4, machine_cores=4, others=0).threads == 4


def test_the_automatic_choice_leaves_busy_cores_to_the_processes_using_them():
    auto = dict(environ={}, cores=4, machine_cores=4)
    assert choose_threads(**auto, others=0).threads == 4
    assert choose_threads(**auto, others=1).threads == 3
    assert choose_threads(**auto, others=12).threads == 1  # never fewer than one
    assert choose_threads(**auto, others=None).threads == 4  # no /proc/loadavg: the cores alone
    assert choose_threads(**auto, others=lambda: 2).threads == 2
    assert choose_threads(**auto, others=0, reserve=1).threads == 3  # a DataLoader worker
    # Two cores of an eight-core machine: the machine's run queue says nothing about ours.
    assert choose_threads(environ={}, cores=2, machine_cores=8, others=6).threads == 2


def test_usable_cores_follow_the_affinity_and_a_cgroup_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: None)
    assert usable_cores() == 3
    assert choose_threads(environ={}, machine_cores=64, others=40).threads == 3  # the default cores: affinity
    monkeypatch.setattr(threads, "cgroup_cpu_quota", lambda: 2)
    assert usable_cores() == 2

    (tmp_path / "cpu.max").write_text("150000 100000\n")  # cgroup v2: 1.5 CPUs
    assert cgroup_cpu_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # cgroup v1, no quota
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert cgroup_cpu_quota(tmp_path) == 3
    assert cgroup_cpu_quota(tmp_path / "absent") is None


def test_other_runnable_is_the_least_of_a_few_readings_less_this_process():
    readings = iter(["0.5 0.4 0.3 4/120 999", "0.5 0.4 0.3 3/120 999", "0.5 0.4 0.3 5/120 999"])
    assert other_runnable(samples=3, pause=0, read=lambda: next(readings)) == 2
    assert other_runnable(samples=2, pause=0, read=lambda: "0.0 0.0 0.0 1/80 5") == 0
    idle_then_busy = iter(["0.0 0.0 0.0 1/80 5", "0.5 0.4 0.3 9/120 999"])
    slept = []
    assert other_runnable(samples=2, pause=7, read=lambda: next(idle_then_busy), sleep=slept.append) == 0
    assert slept == [], "a reading of no other runnable thread ends the count without waiting"

    def unreadable():
        raise OSError("no /proc here")

    assert other_runnable(read=unreadable) is None
    assert other_runnable(samples=1, read=lambda: "garbage") is None


def test_threads_option_reaches_torch_in_transcribe_evaluate_and_train(
    untrained_model, fsdd_clips, tmp_path, monkeypatch, torch_threads, capsys
):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    clip = fsdd_clips / "0_george_10.wav"
    torch.set_num_threads(1)
    assert main(["transcribe", str(clip), "--model", str(untrained_model / MODEL_FILENAME), "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2

    torch.set_num_threads(1)
    write_manifest(tmp_path / "m.jsonl", [Utterance(str(clip), "zero", 0.5, "george", "a")])
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(untrained_model),
                "--manifest",
                str(tmp_path / "m.jsonl"),
                "--out",
                str(tmp_path / "eval"),
                "--threads",
                "2",
            ]
        )
        == 0
    )
    assert torch.get_num_threads() == 2

    import asr.train.loop

    seen = {}

    def no_training(config, *args, **kwargs):
        seen["threads"] = torch.get_num_threads()
        return asr.train.loop.TrainResult(best_epoch=1, best_dev_wer=0.5, epochs_run=1, seconds=0.0, skipped_batches=0)

    monkeypatch.setattr(asr.train.loop, "train", no_training)
    torch.set_num_threads(1)
    assert (
        main(
            [
                "train",
                "--config",
                str(DEMO_CONFIG),
                "--train",
                "t.jsonl",
                "--dev",
                "d.jsonl",
                "--exp",
                str(tmp_path / "exp"),
                "--threads",
                "2",
            ]
        )
        == 0
    )
    assert seen["threads"] == 2

    with pytest.raises(SystemExit):  # argparse refuses it
        main(["transcribe", str(clip), "--threads", "0"])
    assert "expected a whole number >= 1" in capsys.readouterr().err


def test_without_threads_the_environment_reaches_torch(untrained_model, fsdd_clips, monkeypatch, torch_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(1)
    assert main(["transcribe", str(fsdd_clips / "0_george_10.wav"), "--model", str(untrained_model)]) == 0
    assert torch.get_num_threads() == 2
