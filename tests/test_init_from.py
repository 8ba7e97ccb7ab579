"""Fine-tuning: ``[train] init_from`` / ``asr train --init`` start from a packaged model's weights,
and a model of another shape or vocabulary is refused naming what differs."""

from dataclasses import replace

import pytest
import torch

from asr.data.dataset import Utterance, write_manifest
from asr.data.text import CharTokenizer
from asr.features.augment import AugmentConfig
from asr.features.logmel import FeatureConfig
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.model.checkpoint import MODEL_FILENAME, atomic_save, load_model, package
from asr.train.config import ExperimentConfig, TrainConfig
from asr.train.loop import _initialise_from, train
from asr.utils.errors import AsrError

pytestmark = pytest.mark.trains  # every test here trains a model

FEATURES = FeatureConfig(sample_rate=8000, n_mels=40)
SHAPE = ModelConfig(hidden_size=16, num_layers=1)
CLIPS = {"0_george_10": "zero", "1_jackson_11": "one", "6_nicolas_12": "six", "8_theo_13": "eight"}


def packaged(folder, tokenizer=None, features=FEATURES, shape=SHAPE, seed=0):
    """A packaged model with seeded random weights and non-trivial normalisation statistics."""
    torch.manual_seed(seed)
    tokenizer = tokenizer or CharTokenizer()
    network = AcousticModel(len(tokenizer), features, shape)
    network.normalizer.set_statistics(torch.randn(features.n_mels), torch.rand(features.n_mels) + 0.5)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save(package(network, tokenizer, {"note": f"seed {seed}"}), folder / MODEL_FILENAME)
    return folder


def assert_same_state(a: dict, b: dict, atol=0.0):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol, msg=key)


def test_initialise_from_copies_every_weight_and_statistic(tmp_path):
    source = load_model(packaged(tmp_path / "source"))
    network = AcousticModel(len(CharTokenizer()), FEATURES, SHAPE)  # other random weights
    assert not torch.equal(network.state_dict()["normalizer.mean"], source.network.state_dict()["normalizer.mean"])
    _initialise_from(network, CharTokenizer(), str(tmp_path / "source"))
    assert_same_state(network.state_dict(), source.network.state_dict())


def test_a_model_of_another_shape_or_vocabulary_is_refused(tmp_path):
    network = AcousticModel(len(CharTokenizer()), FEATURES, SHAPE)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    wider = packaged(tmp_path / "wider", shape=replace(SHAPE, hidden_size=32))
    with pytest.raises(AsrError, match=r"init_from .*wider.*\[model\]/\[features\] differ.*hidden_size=32"):
        _initialise_from(network, CharTokenizer(), str(wider))
    other_rate = packaged(tmp_path / "16k", features=replace(FEATURES, sample_rate=16000))
    with pytest.raises(AsrError, match=r"\[model\]/\[features\] differ.*sample_rate=16000"):
        _initialise_from(network, CharTokenizer(), str(other_rate))
    no_apostrophe = CharTokenizer([t for t in CharTokenizer().vocabulary if t != "'"])
    fewer_tokens = packaged(tmp_path / "tokens", tokenizer=no_apostrophe)
    with pytest.raises(AsrError, match="its tokens differ from this training set's"):
        _initialise_from(AcousticModel(len(CharTokenizer()), FEATURES, SHAPE), CharTokenizer(), str(fewer_tokens))
    with pytest.raises(AsrError, match="no-such-model"):
        _initialise_from(network, CharTokenizer(), str(tmp_path / "no-such-model"))
    assert_same_state(network.state_dict(), before)  # a refused model leaves the network as it was


def test_training_with_init_starts_from_the_given_weights(fsdd_clips, tmp_path):
    """One epoch at a vanishing learning rate: the trained model is the one it started from
    (and not what its own seed would have drawn)."""
    from asr.cli.main import main
    from asr.utils.config import dump_toml

    utts = [Utterance(str(fsdd_clips / f"{name}.wav"), text, 0.5, None, name) for name, text in CLIPS.items()]
    write_manifest(tmp_path / "clips.jsonl", utts)
    manifest = str(tmp_path / "clips.jsonl")
    source = packaged(tmp_path / "source", seed=3)
    config = ExperimentConfig(
        features=FEATURES,
        augment=AugmentConfig(freq_masks=0, time_masks=0),
        model=SHAPE,
        train=TrainConfig(epochs=1, batch_size=4, learning_rate=1e-12, warmup_steps=1, seed=1),
    )
    (tmp_path / "conf.toml").write_text(dump_toml(config))
    assert (
        main(
            [
                "train",
                "--config",
                str(tmp_path / "conf.toml"),
                "--train",
                manifest,
                "--dev",
                manifest,
                "--exp",
                str(tmp_path / "tuned"),
                "--init",
                str(source),
            ]
        )
        == 0
    )
    tuned, start = load_model(tmp_path / "tuned"), load_model(source)
    assert_same_state(tuned.network.state_dict(), start.network.state_dict(), atol=1e-6)
    train(replace(config, train=replace(config.train, init_from="")), manifest, manifest, tmp_path / "fresh")
    fresh = load_model(tmp_path / "fresh").network.state_dict()
    assert not torch.allclose(fresh["normalizer.mean"], start.network.state_dict()["normalizer.mean"])
