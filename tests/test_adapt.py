"""Two-pass speaker adaptation (asr/adapt.py): a feature transform fitted through the frozen network."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from asr.data.dataset import SpeechDataset, Utterance, collate, write_manifest
from asr.evaluation.evaluate import evaluate
from asr.features.augment import AugmentConfig
from asr.features.logmel import FeatureConfig
from asr.model.acoustic import ModelConfig
from asr.model.checkpoint import load_model
from asr.speakers.adaptation import (
    AdaptConfig,
    FeatureTransform,
    SpeakerAdaptation,
    adapt_to_files,
    fit_transform,
    training_augmentation,
)
from asr.speakers.normalization import ONE_SPEAKER
from asr.train.config import ExperimentConfig, TrainConfig
from asr.train.loop import train
from asr.utils.errors import AsrError

pytestmark = pytest.mark.trains  # every test here trains a model

CLIPS = {"0_george_10": "zero", "1_jackson_11": "one", "6_nicolas_12": "six", "8_theo_13": "eight"}


@pytest.fixture(scope="module")
def clips_model(fsdd_clips, tmp_path_factory):
    """A small model that has learned four real clips, and those clips recorded again through a
    "new microphone": strong pre-emphasis (a spectral tilt the model never heard) and +10 dB."""
    folder = tmp_path_factory.mktemp("adapt")
    clean = [Utterance(str(fsdd_clips / f"{name}.wav"), text, 0.5, "clean", name) for name, text in CLIPS.items()]
    write_manifest(folder / "clean.jsonl", clean)
    config = ExperimentConfig(
        features=FeatureConfig(sample_rate=8000, n_mels=40),
        augment=AugmentConfig(freq_masks=0, time_masks=0),
        model=ModelConfig(frontend="stack", subsampling=2, num_layers=1, hidden_size=64, dropout=0.0),
        train=TrainConfig(epochs=120, batch_size=4, learning_rate=1e-2, warmup_steps=5, schedule="constant", seed=1),
    )
    train(config, folder / "clean.jsonl", folder / "clean.jsonl", folder / "exp")
    tilted = []
    for utt in clean:
        audio, rate = soundfile.read(utt.audio_filepath, dtype="float32")
        emphasised = np.append(audio[:1], audio[1:] - 0.97 * audio[:-1]) * 3.0
        path = folder / f"{utt.id}_tilted.wav"
        soundfile.write(path, emphasised, rate, subtype="FLOAT")
        tilted.append(Utterance(str(path), utt.text, utt.duration, "new microphone", utt.id))
    write_manifest(folder / "tilted.jsonl", tilted)
    return load_model(folder / "exp"), tilted, folder


def _ctc_loss(model, dataset: SpeechDataset) -> float:
    batch = collate([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        log_probs, lengths = model.network.eval()(batch.features, batch.feature_lengths)
        return torch.nn.functional.ctc_loss(
            log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths, blank=model.tokenizer.blank_id
        ).item()


def test_a_new_transform_is_the_identity_behind_any_speaker_normalisation(untrained_model):
    model = load_model(untrained_model)
    features = torch.randn(50, 40) * 3 - 6  # (T, F) raw log-mel scale
    shift = lambda f, speaker: f + 1.0  # noqa: E731  a stand-in speaker normalisation
    adaptation = SpeakerAdaptation(
        {"a": FeatureTransform(40, "full"), "b": FeatureTransform(40, "diagonal")}, model.network, base=shift
    )
    for speaker in ("a", "b", "nobody", None):
        assert torch.allclose(adaptation(features, speaker), features + 1.0, atol=1e-5)


def test_fitting_on_the_new_microphone_undoes_what_it_changed(clips_model):
    model, tilted, folder = clips_model
    tilted_set = SpeechDataset(tilted, model.log_mel, model.tokenizer)
    before = _ctc_loss(model, tilted_set)
    weights = {k: v.clone() for k, v in model.network.state_dict().items()}

    transform = fit_transform(
        model.network,
        SpeechDataset(tilted, model.log_mel, model.tokenizer),
        training_augmentation(model),
        AdaptConfig(epochs=60, learning_rate=0.03, batch_size=4),
    )

    tilted_set.speaker_normalization = SpeakerAdaptation({"new microphone": transform}, model.network)
    after = _ctc_loss(model, tilted_set)
    assert after < 0.3 * before, (before, after)
    for key, value in model.network.state_dict().items():  # the network itself is untouched
        assert torch.equal(value, weights[key]), key
    assert all(p.requires_grad for p in model.network.parameters())


def test_evaluate_adapt_reports_both_passes_and_leaves_unlabelled_audio_unadapted(clips_model, tmp_path, caplog):
    model, tilted, folder = clips_model
    manifest = tmp_path / "mixed.jsonl"
    unlabelled = Utterance(tilted[0].audio_filepath, tilted[0].text, tilted[0].duration, None, "unlabelled")
    write_manifest(manifest, tilted + [unlabelled])

    summary = evaluate(model, manifest, tmp_path / "eval", adapt=AdaptConfig(epochs=2))

    assert summary["num_utterances"] == 5
    adaptation = summary["adaptation"]
    assert adaptation["transform"] == "diagonal" and adaptation["epochs"] == 2
    assert 0.0 <= adaptation["first_pass_wer"] <= 1.0
    assert "1 utterances have no speaker label" in caplog.text
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["adaptation"] == adaptation


def test_adaptation_needs_fixed_normalisation_statistics(clips_model, tmp_path):
    model, tilted, folder = clips_model
    model.network.normalizer.mode = "utterance"
    try:
        with pytest.raises(AsrError, match="fixed normalisation statistics"):
            evaluate(model, folder / "tilted.jsonl", tmp_path / "eval", adapt=AdaptConfig(epochs=1))
    finally:
        model.network.normalizer.mode = "global"
    with pytest.raises(AsrError, match="'diagonal' or 'full'"):
        AdaptConfig(transform="fmllr")


def test_transcribe_adapt_transcribes_every_readable_file_and_names_the_bad_one(clips_model, tmp_path):
    model, tilted, folder = clips_model
    missing = tmp_path / "missing.wav"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "transcribe",
            "--model",
            str(folder / "exp"),
            "--adapt",
            "--adapt-epochs",
            "2",
            *(u.audio_filepath for u in tilted),
            str(missing),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    assert "missing.wav" in run.stderr and "Traceback" not in run.stderr
    lines = run.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [u.audio_filepath for u in tilted]


def test_fitting_is_repeatable_for_a_seed_whatever_torch_drew_before(clips_model):
    model, tilted, _ = clips_model
    masked = AugmentConfig(freq_masks=2, time_masks=2)  # SpecAugment draws from torch's global generator

    def fitted(seed: int) -> torch.Tensor:
        torch.rand(seed + 3)  # a caller that used the global generator before
        dataset = SpeechDataset(tilted, model.log_mel, model.tokenizer)
        transform = fit_transform(model.network, dataset, masked, AdaptConfig(epochs=2, batch_size=2, seed=seed))
        return torch.cat([transform.scale.detach(), transform.bias.detach()])

    assert torch.equal(fitted(0), fitted(0))
    assert not torch.equal(fitted(0), fitted(1))


def test_a_long_file_adapts_on_its_segments(clips_model, tmp_path, caplog):
    """A file longer than one segment is cut at pauses; each segment with its first-pass text is
    one utterance of the fitting, read at its offset in the file."""
    model, tilted, _ = clips_model
    rate = 8000
    pause = np.zeros(rate, dtype="float32")
    takes = [soundfile.read(u.audio_filepath, dtype="float32")[0] for u in tilted]
    audio = np.concatenate([np.concatenate([take, pause]) for _ in range(8) for take in takes])  # about 40 s
    path = tmp_path / "long.wav"
    soundfile.write(path, audio, rate, subtype="FLOAT")
    caplog.set_level("INFO", logger="asr.speakers.adaptation")

    adaptation = adapt_to_files(model, [str(path)], None, AdaptConfig(epochs=1))

    assert set(adaptation.transforms) == {ONE_SPEAKER}
    fitted_on = int(caplog.text.split("adapted to speaker 'one speaker' on ")[1].split()[0])
    assert fitted_on >= 2  # several segments, each at its own offset
