"""Progress: a bar on a terminal, plain lines at intervals in logs and pipes (no carriage returns)."""

import io
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from tqdm import tqdm

from asr.data.dataset import Utterance, write_manifest
from asr.utils.progress import DEFAULT_SECONDS, PlainProgress, progress, progress_seconds


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_interval_with_counts_audio_and_eta():
    clock, out = FakeClock(), io.StringIO()
    bar = progress(total=100, desc="decode", unit="utt", stream=out, interval=30, clock=clock)
    assert isinstance(bar, PlainProgress)
    printed_at = []
    for step in range(1, 11):  # 10 utterances every 10 s
        clock.now += 10
        bar.set_postfix_str(f"{12.5 * step:.0f} s audio")
        before = out.getvalue().count("\n")
        bar.update(10)
        if out.getvalue().count("\n") > before:
            printed_at.append(10 * step)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    assert printed_at == [30, 60, 90]
    lines = text.splitlines()
    assert lines[0] == "decode: 30/100 utt (30%), 38 s audio, 00:30 elapsed, ETA 01:10"
    assert lines[2] == "decode: 90/100 utt (90%), 112 s audio, 01:30 elapsed, ETA 00:10"
    assert lines[-1] == "decode: 100/100 utt (100%), 125 s audio, 01:40 elapsed, done"
    assert len(lines) == 4


def test_plain_progress_over_an_iterable_and_resumed_counts():
    clock, out = FakeClock(), io.StringIO()
    items = []
    for item in progress(range(6), desc="epoch 2/5", unit="batch", stream=out, interval=20, clock=clock):
        clock.now += 15
        items.append(item)
    assert items == list(range(6))
    assert out.getvalue().splitlines() == [
        "epoch 2/5: 2/6 batch (33%), 00:30 elapsed, ETA 01:00",
        "epoch 2/5: 4/6 batch (67%), 01:00 elapsed, ETA 00:30",
        "epoch 2/5: 6/6 batch (100%), 01:30 elapsed, done",
    ]
    # A resumed epoch starts at its position; the rate counts only what this run did.
    out = io.StringIO()
    bar = progress(total=10, desc="epoch", unit="batch", stream=out, interval=0, clock=clock, initial=5)
    clock.now += 10
    bar.update(1)
    assert out.getvalue() == "epoch: 6/10 batch (60%), 00:10 elapsed, ETA 00:40\n"
    # Bytes, scaled; nothing printed for a loop shorter than the interval.
    out = io.StringIO()
    bar = progress(total=10_000_000, desc="a.tar.gz", unit="B", unit_scale=True, stream=out, interval=0, clock=clock)
    bar.update(1_234_567)
    assert out.getvalue().startswith("a.tar.gz: 1.23MB/10.0MB (12%)")
    out = io.StringIO()
    with progress(total=3, stream=out, interval=30, clock=clock) as quiet:
        quiet.update(3)
    assert out.getvalue() == ""


def test_a_terminal_gets_tqdm_and_disabled_progress_prints_nothing():
    assert isinstance(progress(range(3), stream=Terminal()), tqdm)
    out = io.StringIO()
    assert list(progress(range(3), stream=out, interval=0, enabled=False)) == [0, 1, 2]
    assert out.getvalue() == ""


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("ASR_PROGRESS_SECONDS", raising=False)
    assert progress_seconds() == DEFAULT_SECONDS == 30
    monkeypatch.setenv("ASR_PROGRESS_SECONDS", "5")
    assert progress_seconds() == 5
    assert progress(total=1, stream=io.StringIO()).interval == 5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("ASR_PROGRESS_SECONDS", bad)
        assert progress_seconds() == DEFAULT_SECONDS


@pytest.mark.slow
def test_piped_evaluate_and_transcribe_write_lines_not_bars(untrained_model, fsdd_clips, tmp_path):
    """stderr to a file, a progress line at every step (ASR_PROGRESS_SECONDS=0): no carriage return."""
    import os

    env = {**os.environ, "ASR_PROGRESS_SECONDS": "0", "OMP_NUM_THREADS": "1"}
    clips = sorted(fsdd_clips.glob("*.wav"))[:6]
    write_manifest(tmp_path / "m.jsonl", [Utterance(str(c), "zero", 0.5, "s", c.stem) for c in clips])
    with open(tmp_path / "stderr.txt", "w") as err:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "asr",
                "evaluate",
                "--model",
                str(untrained_model),
                "--manifest",
                str(tmp_path / "m.jsonl"),
                "--out",
                str(tmp_path / "eval"),
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            timeout=300,
        )
    log = (tmp_path / "stderr.txt").read_text()
    assert result.returncode == 0, log
    assert "\r" not in log
    assert "decode: 6/6 utt (100%)" in log and " s audio" in log

    # A recording over a minute long gets progress while it is transcribed.
    audio = np.concatenate([sf.read(str(c), dtype="float32")[0] for c in clips] * 25)
    sf.write(str(tmp_path / "long.wav"), audio, 8000)
    assert len(audio) / 8000 >= 60
    result = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", str(tmp_path / "long.wav"), "--model", str(untrained_model)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr
    assert "long.wav: " in result.stderr and " s (" in result.stderr
