import librosa
import numpy as np
import pytest
import torch

from asr.audio.io import load_audio
from asr.features.logmel import FeatureConfig, LogMel, Normalizer, RunningStatistics


@pytest.mark.parametrize("sample_rate,n_mels", [(16000, 80), (8000, 40)])
def test_log_mel_matches_librosa(fsdd_clips, sample_rate, n_mels):
    """Same power mel spectrogram as librosa: relative error below 1e-3 where energy matters."""
    config = FeatureConfig(sample_rate=sample_rate, n_mels=n_mels)
    waveform = load_audio(fsdd_clips / "3_theo_10.wav", sample_rate)
    ours = LogMel(config)(waveform).numpy()  # (T, F)
    reference = librosa.feature.melspectrogram(
        y=waveform.numpy(),
        sr=sample_rate,
        n_fft=config.fft_size,
        hop_length=config.hop_length,
        win_length=config.win_length,
        n_mels=n_mels,
        power=2.0,
        center=True,
        pad_mode="reflect",
    ).T  # (T, F)
    assert ours.shape == reference.shape
    power = np.exp(ours) - FeatureConfig().log_floor
    significant = reference > 1e-4 * reference.max()
    relative = np.abs(power - reference)[significant] / reference[significant]
    assert relative.max() < 1e-3
    assert np.abs(ours - np.log(reference + FeatureConfig().log_floor)).max() < 1e-3


def test_frame_count_and_shape():
    config = FeatureConfig(sample_rate=16000, n_mels=80, hop_ms=10)
    log_mel = LogMel(config)
    features = log_mel(torch.zeros(16000))
    assert features.shape == (log_mel.num_frames(16000), 80) == (101, 80)
    assert torch.isfinite(features).all()
    assert log_mel(torch.zeros(10)).shape[1] == 80  # shorter than an FFT still works


def test_utterance_normalisation_ignores_padding():
    normalizer = Normalizer("utterance", 3)
    features = torch.randn(2, 10, 3) * 5 + 7
    lengths = torch.tensor([10, 6])
    out = normalizer(features, lengths)
    valid = out[1, :6]
    assert torch.allclose(valid.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(valid.std(0, unbiased=False), torch.ones(3), atol=1e-4)
    assert (out[1, 6:] == 0).all()


def test_running_statistics_equal_direct_computation():
    chunks = [torch.randn(n, 4) * 3 + 1 for n in (5, 17, 9)]
    stats = RunningStatistics(4)
    for chunk in chunks:
        stats.add(chunk)
    mean, std = stats.result()
    everything = torch.cat(chunks)
    assert torch.allclose(mean, everything.mean(0), atol=1e-5)
    assert torch.allclose(std, everything.std(0, unbiased=False), atol=1e-5)


def test_utterance_mean_normalisation_cancels_gain_and_channel():
    """A louder copy with a different microphone colour gives the same normalised features."""
    normalizer = Normalizer("utterance_mean", 4)
    features = torch.randn(1, 30, 4)
    tilt = torch.tensor([3.0, 1.0, -1.0, -2.0])  # a per-channel offset, as a gain or EQ adds in log-mel
    lengths = torch.tensor([30])
    assert torch.allclose(normalizer(features, lengths), normalizer(features + tilt, lengths), atol=1e-5)


def test_dynamic_range_clamps_below_the_loudest_bin(fsdd_clips):
    waveform = load_audio(fsdd_clips / "3_jackson_0.wav", 8000)
    plain = LogMel(FeatureConfig(sample_rate=8000, n_mels=40))(waveform)
    clamped = LogMel(FeatureConfig(sample_rate=8000, n_mels=40, dynamic_range_db=30.0))(waveform)
    floor = plain.max() - 30 * np.log(10) / 10
    assert torch.isclose(clamped.min(), floor)
    loud = plain >= floor
    assert (~loud).any() and torch.equal(clamped[loud], plain[loud])
    with pytest.raises(ValueError, match="dynamic_range_db"):
        FeatureConfig(dynamic_range_db=-1.0)
