"""Per-speaker normalisation (``normalization = "speaker"``) on real FSDD clips."""

from pathlib import Path

import pytest
import soundfile
import torch

from asr.data.dataset import SpeechDataset, Utterance, write_manifest
from asr.data.text import CharTokenizer
from asr.features.logmel import FeatureConfig, LogMel
from asr.model.acoustic import AcousticModel, ModelConfig
from asr.speakers.normalization import normalize_speakers
from asr.train.config import ExperimentConfig, load_config
from asr.utils.errors import AsrError

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _utterances(clips: list[Path], speaker: str | None) -> list[Utterance]:
    return [Utterance(str(p), DIGITS[int(p.name[0])], soundfile.info(str(p)).duration, speaker) for p in clips]


def _network() -> AcousticModel:
    torch.manual_seed(0)
    features = FeatureConfig(sample_rate=8000, n_mels=40, normalization="speaker")
    network = AcousticModel(len(CharTokenizer()), features, ModelConfig(hidden_size=8, num_layers=1))
    network.normalizer.set_statistics(torch.linspace(-8, -2, 40), torch.linspace(1, 3, 40))  # "global" statistics
    return network


def _normalised(dataset: SpeechDataset, network: AcousticModel, indices) -> torch.Tensor:
    """What the network's recurrent layers receive for ``indices``, frames stacked: ``(sum T, F)``."""
    frames = []
    for index in indices:
        features = dataset[index][0]  # (T, F)
        frames.append(network.normalizer(features[None], torch.tensor([features.shape[0]]))[0])
    return torch.cat(frames)


def test_each_speaker_is_standardised_by_their_own_statistics_and_unlabelled_audio_keeps_the_global_ones(
    fsdd_clips, tmp_path
):
    george = sorted(fsdd_clips.glob("*_george_*.wav"))[:6]
    # the same six takes, 12 dB louder, as a second "speaker" on another microphone gain
    loud = []
    for path in george:
        audio, rate = soundfile.read(path, dtype="float32")
        loud.append(tmp_path / path.name)  # digit first in the name, as in FSDD
        soundfile.write(loud[-1], 4 * audio, rate, subtype="FLOAT")
    jackson = sorted(fsdd_clips.glob("*_jackson_*.wav"))[:2]
    utterances = _utterances(george, "george") + _utterances(loud, "loud") + _utterances(jackson, None)
    network = _network()
    dataset = SpeechDataset(utterances, LogMel(network.feature_config), CharTokenizer())
    raw_loud_gap = torch.cat([dataset[i][0] - dataset[i + 6][0] for i in range(6)]).abs().mean()

    normalize_speakers(dataset, network)

    for indices in (range(0, 6), range(6, 12)):
        frames = _normalised(dataset, network, indices)
        assert torch.allclose(frames.mean(0), torch.zeros(40), atol=1e-4)
        assert torch.allclose(frames.std(0, unbiased=False), torch.ones(40), atol=1e-3)
    # The gain that separated the two copies (about ln 16 = 2.8 per bin) is gone, apart from the
    # quietest bins where the log floor clips the softer copy.
    normalised_gap = (
        (_normalised(dataset, network, range(0, 6)) - _normalised(dataset, network, range(6, 12))).abs().mean()
    )
    assert raw_loud_gap > 2.0 and normalised_gap < 0.05 * raw_loud_gap
    # unlabelled clips get exactly the global statistics, as `asr transcribe FILE` would
    for index in (12, 13):
        raw = dataset.log_mel(dataset.waveform(index))
        expected = (raw - network.normalizer.mean) / network.normalizer.std
        assert torch.allclose(_normalised(dataset, network, [index]), expected, atol=1e-5)


def test_other_normalisations_leave_the_dataset_alone(fsdd_clips):
    utterances = _utterances(sorted(fsdd_clips.glob("*_theo_*.wav"))[:2], "theo")
    network = AcousticModel(
        len(CharTokenizer()), FeatureConfig(sample_rate=8000, n_mels=40), ModelConfig(hidden_size=8)
    )
    dataset = SpeechDataset(utterances, LogMel(network.feature_config), CharTokenizer())
    normalize_speakers(dataset, network)
    assert dataset.speaker_normalization is None


def _config(tmp_path) -> ExperimentConfig:
    text = (
        '[features]\nsample_rate = 8000\nn_mels = 40\nnormalization = "speaker"\n'
        "[model]\nnum_layers = 1\nhidden_size = 16\n"
        "[train]\nepochs = 1\nbatch_size = 4\nmax_batch_seconds = 10.0\n"
    )
    (tmp_path / "conf.toml").write_text(text)
    return load_config(tmp_path / "conf.toml")


@pytest.fixture(scope="module")
def speaker_experiment(fsdd_clips, tmp_path_factory):
    """One epoch of a small speaker-normalised model on two speakers: (folder, config, utterances)."""
    from asr.train.loop import train

    folder = tmp_path_factory.mktemp("speaker_model")
    clips = sorted(fsdd_clips.glob("*_nicolas_*.wav"))[:8] + sorted(fsdd_clips.glob("*_yweweler_*.wav"))[:8]
    utterances = [
        Utterance(str(p), DIGITS[int(p.name[0])], soundfile.info(str(p)).duration, p.name.split("_")[1]) for p in clips
    ]
    write_manifest(folder / "train.jsonl", utterances[2:8] + utterances[10:])
    write_manifest(folder / "dev.jsonl", utterances[:2] + utterances[8:10])
    config = _config(folder)
    train(config, folder / "train.jsonl", folder / "dev.jsonl", folder / "exp")
    return folder, config, utterances


@pytest.mark.trains
def test_training_with_speaker_normalisation_packages_it_and_shards_are_refused(speaker_experiment, tmp_path):
    from asr.data.shards import write_shards
    from asr.evaluation.evaluate import evaluate
    from asr.model.checkpoint import load_model
    from asr.train.loop import train

    folder, config, utterances = speaker_experiment
    model = load_model(folder / "exp")
    assert model.network.feature_config.normalization == "speaker"
    assert not torch.equal(model.network.normalizer.std, torch.ones(40))  # global statistics for unlabelled audio
    summary = evaluate(model, folder / "dev.jsonl", tmp_path / "eval")
    assert summary["num_utterances"] == 4

    write_shards(utterances, tmp_path / "shards", shard_size=8)
    with pytest.raises(AsrError, match="train from a manifest, not shards"):
        train(config, tmp_path / "shards", folder / "dev.jsonl", tmp_path / "exp_shards")


@pytest.mark.trains
def test_transcribe_same_speaker_pools_the_statistics_of_every_readable_file(
    speaker_experiment, untrained_model, tmp_path, capsys
):
    from asr.audio.io import load_audio
    from asr.cli.main import main
    from asr.features.logmel import RunningStatistics
    from asr.model.checkpoint import load_model
    from asr.speakers.normalization import ONE_SPEAKER, one_speaker_normalization

    folder, _, utterances = speaker_experiment
    files = [utterances[0].audio_filepath, utterances[1].audio_filepath]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEfmt nonsense")
    model = load_model(folder / "exp")
    expected = RunningStatistics(40)
    for path in files:
        expected.add(model.log_mel(load_audio(path, 8000)))
    mapping = one_speaker_normalization([files[0], str(broken), files[1]], model.network, model.log_mel)
    mean, std = mapping.statistics[ONE_SPEAKER]
    assert torch.allclose(mean, expected.result()[0], atol=1e-4)
    assert torch.allclose(std, expected.result()[1], atol=1e-4)

    code = main(["transcribe", "--same-speaker", "--model", str(folder / "exp"), files[0], str(broken), files[1]])
    out, err = capsys.readouterr()
    assert code == 1 and str(broken) in err  # the unreadable file is named; the others are transcribed
    assert [line.split("\t")[0] for line in out.splitlines()] == files
    assert main(["transcribe", "--same-speaker", "--model", str(untrained_model), files[0]]) != 0
    assert 'needs a model trained with normalization = "speaker"' in capsys.readouterr().err
