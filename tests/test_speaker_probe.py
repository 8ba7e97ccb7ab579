"""The speaker probe: it finds the speakers in features that hold them, and refuses what it cannot score."""

from dataclasses import replace

import pytest
import torch

from asr.cli.main import main
from asr.data.dataset import Utterance, write_manifest
from asr.model.checkpoint import load_model
from asr.speakers.probe import ProbeConfig, probe_speakers, untrained_copy
from asr.utils.errors import AsrError

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven")
SPEAKERS = ("george", "jackson", "theo")
FAST = ProbeConfig(steps=300, batch_frames=256)


@pytest.fixture(scope="module")
def utterances(fsdd_clips) -> list[Utterance]:
    """32 clips of each of three demo speakers."""
    return [
        Utterance(str(fsdd_clips / f"{digit}_{speaker}_{take}.wav"), DIGITS[digit], 0.5, speaker)
        for speaker in SPEAKERS
        for digit in range(len(DIGITS))
        for take in (0, 1, 10, 11)
    ]


def test_an_untrained_network_s_outputs_name_the_speakers_well_above_the_majority(
    untrained_model, utterances, tmp_path
):
    model = load_model(untrained_model)
    missing = Utterance(str(tmp_path / "gone.wav"), "zero", 0.5, "theo")
    generator_state = torch.get_rng_state()
    result = probe_speakers(model, [*utterances, missing], FAST, untrained_copy(model.network))
    assert torch.equal(torch.get_rng_state(), generator_state)  # seeded on its own, the caller's draws unchanged
    assert result.speakers == 3
    assert result.train_utterances + result.test_utterances == len(utterances)  # the missing file is left out
    assert result.test_utterances >= 3  # every speaker is scored
    assert result.majority_accuracy < 0.5
    assert result.frame_accuracy > result.majority_accuracy + 0.2  # random projections keep the voice


def test_shuffled_speaker_labels_bring_the_probe_down_to_chance(untrained_model, utterances):
    model = load_model(untrained_model)
    # Labels that do not follow the voice: each "speaker" reads a mix of all three voices.
    mixed = [replace(u, speaker=SPEAKERS[i % 3]) for i, u in enumerate(utterances)]
    real = probe_speakers(model, utterances, FAST)
    chance = probe_speakers(model, mixed, FAST)
    assert chance.frame_accuracy < real.frame_accuracy - 0.25


def test_one_speaker_is_refused(untrained_model, utterances):
    with pytest.raises(AsrError, match="at least two speakers"):
        probe_speakers(load_model(untrained_model), [u for u in utterances if u.speaker == "theo"], FAST)


def test_cli_prints_the_accuracies_and_names_a_bad_option(untrained_model, utterances, tmp_path, capsys):
    write_manifest(tmp_path / "probe.jsonl", utterances)
    args = [
        "probe-speakers",
        "--model",
        str(untrained_model),
        "--manifest",
        str(tmp_path / "probe.jsonl"),
        "--steps",
        "200",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "3 speakers" in out and "frame accuracy" in out and "commonest speaker" in out
    assert main([*args, "--untrained"]) == 0
    assert "an untrained copy of" in capsys.readouterr().out
    assert main([*args[:-1], "0"]) == 2
    assert "steps" in capsys.readouterr().err
