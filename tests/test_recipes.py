"""End-to-end recipe runs on real audio (slow: they train a model)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.audio.io import load_audio
from asr.audio.pauses import sound_spans

pytestmark = pytest.mark.trains  # every test here trains a model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def yesno_recipe(shared_data, tmp_path_factory):
    """Run the whole yesno recipe once: prepare, train, LM, evaluate greedy and beam, transcribe."""
    work = tmp_path_factory.mktemp("yesno")
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--src", str(shared_data / "yesno")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work, result


@pytest.mark.slow
def test_yesno_recipe_end_to_end(yesno_recipe):
    work, result = yesno_recipe
    for decoder in ("greedy", "beam"):
        summary = json.loads((work / "exp" / "yesno" / f"eval_test_{decoder}" / "summary.json").read_text())
        assert summary["num_utterances"] == 29 and summary["num_words"] == 232
        assert summary["decoder"]["kind"] == decoder
        # the recipe README records the measured figures: greedy 0.43-1.29 %, beam 0.00 % over 8 runs
        assert summary["wer"] <= (0.02 if decoder == "greedy" else 0.005)
    transcript = result.stdout.strip().splitlines()[-1].split()  # stage 5 prints last
    assert len(transcript) == 8 and set(transcript) <= {"yes", "no"}


@pytest.mark.slow
def test_word_timestamps_match_the_pauses_between_words(yesno_recipe, shared_data):
    """yesno words are separated by pauses, so their boundaries are known from the energy alone."""
    work, _ = yesno_recipe
    clips = [json.loads(line)["audio_filepath"] for line in (work / "data/yesno/test.jsonl").read_text().splitlines()]
    result = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", *clips, "--model", str(work / "exp/yesno"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    transcripts = json.loads(result.stdout)
    assert [t["file"] for t in transcripts] == clips
    errors, compared = [], 0
    for transcript in transcripts:
        words = transcript["words"]
        assert [w["word"] for w in words] == transcript["text"].split()
        assert all(w["start"] < w["end"] for w in words)
        segments = sound_spans(load_audio(transcript["file"], 8000), 8000)
        if len(segments) != len(words):  # two words run together in the energy: no reference
            continue
        compared += 1
        for (start, end), word in zip(segments, words):
            errors += [word["start"] - start, word["end"] - end]
    errors = np.abs(errors)
    assert compared >= 10
    # CTC fires a little after a word's onset and stops before its tail: measured mean 0.04 s, 95 % <= 0.1 s
    assert errors.mean() <= 0.06 and np.percentile(errors, 90) <= 0.1, (errors.mean(), np.percentile(errors, 90))


@pytest.mark.slow
def test_streaming_recipe_model_prints_growing_partials_of_a_real_clip_from_stdin(yesno_recipe, shared_data):
    """recipes/yesno/conf_streaming.toml trained by the recipe (stages 1-2), then a test file piped
    through ``asr transcribe --stream -``: the partials grow word by word to the final text."""
    work, _ = yesno_recipe
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--src", str(shared_data / "yesno"), "--stage", "1",
         "--stop-stage", "2", "--config", str(ROOT / "recipes" / "yesno" / "conf_streaming.toml"),
         "--exp", "exp/yesno_streaming"],
        cwd=work, env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    clip = shared_data / "yesno" / "waves_yesno" / "1_0_1_1_0_1_1_1.wav"  # a test file
    streamed = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", "--stream", "-", "--model", str(work / "exp/yesno_streaming")],
        input=clip.read_bytes(), capture_output=True, timeout=300,
    )  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr.decode()[-2000:]
    final = streamed.stdout.decode().split()
    reference = ["yes" if bit == "1" else "no" for bit in clip.stem.split("_")]
    assert sum(a != b for a, b in zip(final, reference)) + abs(len(final) - len(reference)) <= 1
    lines = [line.split(": ", 1) for line in streamed.stderr.decode().splitlines() if line.startswith("partial ")]
    seconds = [float(head.removeprefix("partial ").removesuffix("s")) for head, _ in lines]  # "partial 1.20s"
    partials = [text for _, text in lines]
    assert len(partials) >= len(reference) and seconds == sorted(seconds) and seconds[0] < 3.0  # words before the end
    assert all(later.startswith(earlier) for earlier, later in zip(partials, partials[1:]))


def test_leave_one_speaker_out_script_trains_on_synthetic_voices_and_reports_every_decoding(tmp_path):
    """recipes/fsdd/loso.sh on the embedded demo clips: one held-out speaker, a one-epoch model; then self_train.sh continues it on the speaker's
    clips as the model transcribed them."""
    # with espeak-ng installed, two synthetic speakers read all ten digits; without it, real speakers only
    synth_speakers = 2 if shutil.which("espeak-ng") else 0
    synth = ["--synth-speakers", "2", "--synth-engines", "espeak-ng"] if synth_speakers else ["--synth-per-digit", "0"]
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[features]\nsample_rate = 8000\nn_mels = 20\n[model]\nnum_layers = 1\nhidden_size = 16\n"
        "[train]\nepochs = 1\nbatch_size = 32\n"
    )
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "fsdd" / "loso.sh"), "--src", str(ROOT / "data" / "fsdd_demo"),
         "--exp", str(tmp_path / "loso"), "--config", str(config), "--speakers", "theo", "--seed", "7",
         *synth, "--python", sys.executable],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    data = tmp_path / "loso" / "theo" / "data"
    real = (data / "train.jsonl").read_text().splitlines()
    combined = (data / "train_all.jsonl").read_text().splitlines()
    assert len(combined) == len(real) + 10 * synth_speakers
    synthetic = [json.loads(line)["speaker"] for line in combined[len(real) : len(real) + 10 * synth_speakers]]
    assert len(set(synthetic)) == synth_speakers and all(synthetic.count(s) == 10 for s in synthetic)
    assert not any('"theo' in line for line in real + combined)
    # --seed reached asr train: the fold's config records it
    assert "seed = 7" in (tmp_path / "loso" / "theo" / "config.toml").read_text().splitlines()
    for evaluation, decoder in (
        ("eval_unseen", "greedy"),
        ("eval_unseen_beam", "beam"),
        ("eval_unseen_adapted", "beam"),
    ):
        summary = json.loads((tmp_path / "loso" / "theo" / evaluation / "summary.json").read_text())
        assert summary["num_utterances"] == 130 and summary["decoder"]["kind"] == decoder
    results = (tmp_path / "loso" / "RESULTS.md").read_text()
    assert "eval_unseen |" in results and "eval_unseen_beam |" in results and "eval_unseen_adapted |" in results
    adapted = json.loads((tmp_path / "loso" / "theo" / "eval_unseen_adapted" / "summary.json").read_text())
    beam = json.loads((tmp_path / "loso" / "theo" / "eval_unseen_beam" / "summary.json").read_text())
    assert adapted["adaptation"]["first_pass_wer"] == pytest.approx(beam["wer"])  # the first pass is the beam run

    # self-training on theo's clips with index < 12, from their transcripts by the model; the rest is tested
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "fsdd" / "self_train.sh"), "--exp", str(tmp_path / "loso"),
         "--speakers", "theo", "--epochs", "1", "--split-index", "12", "--control", "--python", sys.executable],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    work = tmp_path / "loso" / "theo" / "self_train"
    adapt = [json.loads(line) for line in (work / "adapt_audio.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (work / "test_half.jsonl").read_text().splitlines()]
    assert len(adapt) == 50 and len(test) == 80  # demo indices 0, 1, 5, 10, 11 | 12-19, ten digits each
    transcripts = {h["id"]: h["text"] for h in map(json.loads, (work / "round1/transcripts/hyp.jsonl").open())}
    trained_on = [json.loads(line) for line in (work / "round1" / "train.jsonl").read_text().splitlines()]
    theo = {u["id"]: u["text"] for u in trained_on if u["speaker"] == "theo"}
    assert theo == transcripts and set(theo) == {u["id"] for u in adapt}  # the model's words, not the references
    history = json.loads((work / "round1" / "exp" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]  # one more epoch on top of loso.sh's one
    for run in ("base", "round1", "control"):
        for decoder in ("greedy", "beam"):
            summary = json.loads((work / f"eval_{run}_{decoder}" / "summary.json").read_text())
            assert summary["num_utterances"] == 80 and summary["decoder"]["kind"] == decoder
    assert "round1, beam:" in (tmp_path / "loso" / "SELF_TRAIN.md").read_text()


def test_a_run_that_does_not_fit_its_training_files_is_restarted_with_the_next_seed(shared_data, tmp_path):
    """yesno's run.sh tries TRAIN_SEEDS in turn while the best WER on the training files is above FIT_WER."""
    config = tmp_path / "one_epoch.toml"
    config.write_text("[features]\nsample_rate = 8000\nn_mels = 20\n[model]\nnum_layers = 1\nhidden_size = 8\n"
                      "[train]\nepochs = 1\nbatch_size = 8\n")  # fmt: skip
    env = {**os.environ, "PYTHON": sys.executable, "TRAIN_SEEDS": "3 4"}
    result = subprocess.run(
        ["bash", str(ROOT / "recipes" / "yesno" / "run.sh"), "--src", str(shared_data / "yesno"),
         "--config", str(config), "--stop-stage", "2"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage 2: train -> exp/yesno (seed 3)" in result.stderr
    assert "WARNING: seed 3: best train WER above 0.05" in result.stderr  # one epoch cannot fit 31 files
    assert "stage 2: train -> exp/yesno (seed 4)" in result.stderr
    assert (tmp_path / "exp" / "yesno" / "train.log").read_text().count("epoch 1: train loss") == 2
