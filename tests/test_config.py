import json

import pytest

from asr.train.config import config_from_dict, load_config
from asr.utils.config import dump_toml
from asr.utils.errors import ConfigError


def test_recipe_configs_load_and_round_trip(tmp_path):
    from pathlib import Path

    for path in Path(__file__).resolve().parents[1].glob("recipes/*/*.toml"):  # bases resolved
        config = load_config(path)
        copy = tmp_path / "copy.toml"
        copy.write_text(dump_toml(config))
        assert load_config(copy) == config


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nhiden_size = 10\n")
    with pytest.raises(ConfigError, match=r"c.toml \[model\]: unknown key 'hiden_size'"):
        load_config(path)


def test_unknown_section_and_wrong_type():
    with pytest.raises(ConfigError, match="unknown section"):
        config_from_dict({"optimiser": {}})
    with pytest.raises(ConfigError, match=r"\[train\].epochs"):
        config_from_dict({"train": {"epochs": "ten"}})
    with pytest.raises(ConfigError, match="cell"):
        config_from_dict({"model": {"cell": "lstmm"}})


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="broken.toml: invalid TOML"):
        load_config(path)


def write(path, text):
    path.write_text(text)
    return path


def test_base_tables_are_merged_key_by_key(tmp_path):
    write(tmp_path / "base.toml", "[model]\nhidden_size = 64\nnum_layers = 2\n[train]\nepochs = 9\n")
    config = load_config(write(tmp_path / "c.toml", 'base = "base.toml"\n[model]\nhidden_size = 32\n'))
    assert (config.model.hidden_size, config.model.num_layers, config.train.epochs) == (32, 2, 9)


def test_bases_chain_through_folders(tmp_path):
    (tmp_path / "shared").mkdir()
    write(tmp_path / "shared" / "root.toml", "[train]\nepochs = 3\nbatch_size = 4\nseed = 5\n")
    write(tmp_path / "middle.toml", 'base = "shared/root.toml"\n[train]\nbatch_size = 8\n')
    config = load_config(write(tmp_path / "top.toml", 'base = "middle.toml"\n[train]\nseed = 6\n'))
    assert (config.train.epochs, config.train.batch_size, config.train.seed) == (3, 8, 6)


def test_a_cycle_of_bases_names_its_files(tmp_path):
    write(tmp_path / "a.toml", 'base = "b.toml"\n')
    write(tmp_path / "b.toml", 'base = "a.toml"\n')
    with pytest.raises(ConfigError, match=r"cycle: .*a\.toml -> .*b\.toml -> .*a\.toml"):
        load_config(tmp_path / "a.toml")
    with pytest.raises(ConfigError, match="missing.toml: no such config file"):
        load_config(write(tmp_path / "c.toml", 'base = "missing.toml"\n'))


def test_overrides_set_numbers_strings_and_lists(tmp_path):
    path = write(tmp_path / "c.toml", "[train]\nepochs = 9\n")
    config = load_config(
        path,
        [
            "train.epochs=2",
            "train.learning_rate=5e-4",
            "train.schedule=linear",
            'train.init_from="exp/a model"',
            "augment.speed_factors=[0.9, 1.1]",
        ],
    )
    assert (config.train.epochs, config.train.learning_rate, config.train.schedule) == (2, 5e-4, "linear")
    assert config.train.init_from == "exp/a model" and config.augment.speed_factors == (0.9, 1.1)
    assert load_config(path, ["train.init_from=exp/model.pt"]).train.init_from == "exp/model.pt"  # unquoted


def test_unknown_or_malformed_overrides_are_named(tmp_path):
    path = write(tmp_path / "c.toml", "")
    with pytest.raises(ConfigError, match=r"unknown key 'hiden_size' in \[model\]"):
        load_config(path, ["model.hiden_size=3"])
    with pytest.raises(ConfigError, match=r"unknown section \[modle\]"):
        load_config(path, ["modle.hidden_size=3"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(path, ["epochs=3"])
    with pytest.raises(ConfigError, match=r"\[train\].epochs: expected"):
        load_config(path, ["train.epochs=ten"])


@pytest.mark.trains
@pytest.mark.trains
def test_train_set_reaches_the_saved_config(tmp_path, fsdd_clips):
    from asr.cli.main import main

    clips = sorted(fsdd_clips.glob("*.wav"))[:4]
    rows = [{"audio_filepath": str(clip), "text": "digit"} for clip in clips]
    manifest = write(tmp_path / "m.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    write(
        tmp_path / "base.toml",
        "[features]\nsample_rate = 8000\nn_mels = 20\n[model]\nnum_layers = 1\n"
        "hidden_size = 16\n[train]\nepochs = 3\nbatch_size = 4\n",
    )
    config = write(tmp_path / "c.toml", 'base = "base.toml"\n[model]\nhidden_size = 8\n')
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--train",
                str(manifest),
                "--dev",
                str(manifest),
                "--exp",
                str(tmp_path / "exp"),
                "--set",
                "train.epochs=1",
                "--set",
                "model.hidden_size=12",
                "--set",
                "train.schedule=constant",
            ]
        )
        == 0
    )
    saved = load_config(tmp_path / "exp" / "config.toml")
    assert (saved.train.epochs, saved.model.hidden_size, saved.train.schedule) == (1, 12, "constant")
    assert saved.features.n_mels == 20 and saved.train.batch_size == 4  # from the base
    assert "base" not in (tmp_path / "exp" / "config.toml").read_text()
