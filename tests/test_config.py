import pytest

from asr.utils.config import dump_toml
from asr.utils.errors import ConfigError
from asr.train.config import config_from_dict, load_config


def test_recipe_configs_load_and_round_trip(tmp_path):
    from pathlib import Path

    for path in Path(__file__).resolve().parents[1].glob("recipes/*/conf.toml"):
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
