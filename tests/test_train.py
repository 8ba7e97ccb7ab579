"""Training on a few real clips: the loss falls, the model learns them, checkpoints resume."""

import json

import pytest
import torch

from asr.data.dataset import SpeechDataset, Utterance, write_manifest
from asr.evaluation.evaluate import evaluate
from asr.features.augment import AugmentConfig
from asr.features.logmel import FeatureConfig
from asr.inference.transcribe import transcribe_file
from asr.model.acoustic import ModelConfig
from asr.model.checkpoint import load_model, safe_load
from asr.train.config import ExperimentConfig, TrainConfig
from asr.train.loop import cpu_runs_bf16_recurrence, train
from asr.train.word_crop import align_word_cuts

CLIPS = {"0_george_10": "zero", "1_jackson_11": "one", "6_nicolas_12": "six", "8_theo_13": "eight"}


def tiny_config(epochs: int) -> ExperimentConfig:
    return ExperimentConfig(
        features=FeatureConfig(sample_rate=8000, n_mels=40),
        augment=AugmentConfig(freq_masks=0, time_masks=0),
        model=ModelConfig(frontend="stack", subsampling=2, num_layers=1, hidden_size=64, dropout=0.0),
        train=TrainConfig(epochs=epochs, batch_size=4, learning_rate=1e-2, warmup_steps=5, schedule="constant", seed=1),
    )


@pytest.fixture(scope="module")
def manifest(fsdd_clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("overfit")
    utts = [
        Utterance(str(fsdd_clips / f"{name}.wav"), text, 0.5, name.split("_")[1], name) for name, text in CLIPS.items()
    ]
    write_manifest(folder / "clips.jsonl", utts)
    return folder / "clips.jsonl"


@pytest.mark.trains
def test_overfits_a_few_real_clips(manifest, tmp_path, fsdd_clips):
    result = train(tiny_config(epochs=150), manifest, manifest, tmp_path / "exp")
    history = json.loads((tmp_path / "exp" / "history.json").read_text())
    assert history[-1]["train_loss"] < 0.25 * history[0]["train_loss"]
    assert result.best_dev_wer == 0.0
    model = load_model(tmp_path / "exp")
    for name, text in CLIPS.items():
        assert transcribe_file(model, fsdd_clips / f"{name}.wav").text == text
    summary = evaluate(model, manifest, tmp_path / "eval")
    assert summary["wer"] == 0.0 and summary["num_utterances"] == 4
    assert {"wer", "cer", "num_utterances", "num_words", "substitutions", "deletions", "insertions"} <= set(summary)
    for name in ("summary.json", "report.md", "report.html", "alignments.txt", "hyp.jsonl"):
        assert (tmp_path / "eval" / name).is_file()
    for name in ("config.toml", "train.log", "last.pt", "model.pt", "curves.png"):
        assert (tmp_path / "exp" / name).is_file()
    assert list((tmp_path / "exp" / "tensorboard").iterdir())


def train_straight_and_resumed(make_config, manifest, folder) -> tuple[dict, dict]:
    """The training states (``last.pt``) of three epochs straight, and of two epochs, a stop and
    one resumed epoch; ``make_config(epochs)`` gives the config."""
    train(make_config(3), manifest, manifest, folder / "straight")
    train(make_config(2), manifest, manifest, folder / "resumed")
    train(make_config(3), manifest, manifest, folder / "resumed", resume=True)
    return safe_load(folder / "straight" / "last.pt"), safe_load(folder / "resumed" / "last.pt")


@pytest.mark.trains
def test_resume_continues_to_the_same_weights(manifest, tmp_path):
    """Three epochs straight equal two epochs, a stop, and one resumed epoch."""
    straight, resumed = train_straight_and_resumed(tiny_config, manifest, tmp_path)
    assert resumed["epoch"] == 3 and len(resumed["history"]) == 3
    for key, value in straight["model"].items():
        assert torch.allclose(value, resumed["model"][key], atol=1e-6), key


@pytest.mark.trains
def test_bf16_autocast_trains_on_cpu_close_to_fp32(manifest, tmp_path):
    from dataclasses import replace

    from asr.utils.errors import AsrError

    full = tiny_config(epochs=3)
    half = replace(full, train=replace(full.train, precision="bf16"))
    with pytest.raises(AsrError, match="fp16 needs a CUDA device"):
        train(
            replace(full, train=replace(full.train, precision="fp16", device="cpu")), manifest, manifest, tmp_path / "x"
        )
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        TrainConfig(precision="fp8")
    if not cpu_runs_bf16_recurrence():  # e.g. AMD EPYC without AVX-512: a clear refusal, not oneDNN's
        with pytest.raises(AsrError, match="no bfloat16 LSTM kernel"):
            train(half, manifest, manifest, tmp_path / "bf16")
        pytest.skip("this CPU has no bfloat16 LSTM kernel: the refusal was checked")
    train(full, manifest, manifest, tmp_path / "fp32")
    result = train(half, manifest, manifest, tmp_path / "bf16")
    assert result.skipped_batches == 0
    fp32 = json.loads((tmp_path / "fp32" / "history.json").read_text())
    bf16 = json.loads((tmp_path / "bf16" / "history.json").read_text())
    for a, b in zip(fp32, bf16):
        assert b["train_loss"] != a["train_loss"]  # bfloat16 really was used ...
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05)  # ... and trains the same way


def test_word_cuts_come_only_from_utterances_the_model_already_gets_right(shared_data, untrained_model):
    """Cropping with cuts from a model that cannot yet transcribe an utterance would pair audio
    with the wrong words; such utterances are left uncropped."""
    folder = shared_data / "yesno" / "waves_yesno"
    names = sorted(p.stem for p in folder.glob("*.wav"))[:3]
    utts = [Utterance(str(folder / f"{n}.wav"), " ".join("yes" if b == "1" else "no" for b in n.split("_")), 6.0)
            for n in names]  # fmt: skip
    model = load_model(untrained_model)
    dataset = SpeechDataset(utts, model.log_mel, model.tokenizer)
    assert align_word_cuts(model.network, dataset, model.tokenizer, "cpu") == {}
