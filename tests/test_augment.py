import random

import pytest
import torch

from asr.features.augment import AugmentConfig, perturb_waveform
from asr.train.word_crop import crop_to_words


def test_speed_perturbation_changes_duration_by_the_factor():
    waveform = torch.randn(8000)
    config = AugmentConfig(speed_factors=(1.25,))
    out = perturb_waveform(waveform, 8000, config, random.Random(0))
    assert out.numel() == pytest.approx(8000 / 1.25, rel=0.01)


def test_padding_adds_quiet_background_at_both_ends():
    waveform = torch.cat([torch.zeros(800) + 0.001 * torch.randn(800), torch.randn(8000)])
    out = perturb_waveform(waveform, 8000, AugmentConfig(pad_seconds=0.5), random.Random(1))
    assert 8800 < out.numel() <= 8800 + 8000
    start = out.numel() - 8800
    assert out[: max(1, start // 2)].abs().max() < 0.05  # background level, not speech


def test_noise_has_the_requested_snr():
    waveform = torch.sin(torch.arange(16000) * 0.05)
    config = AugmentConfig(noise_prob=1.0, noise_snr_db=(20.0, 20.0))
    noise = perturb_waveform(waveform, 16000, config, random.Random(2)) - waveform
    snr = 10 * torch.log10(waveform.pow(2).mean() / noise.pow(2).mean())
    assert snr.item() == pytest.approx(20.0, abs=0.5)


def test_crop_to_words_keeps_audio_and_text_in_step():
    # three "words" of constant value 1, 2, 3, with cuts between them
    waveform = torch.cat([torch.full((100,), 1.0), torch.full((100,), 2.0), torch.full((100,), 3.0)])
    seen = set()
    rng = random.Random(3)
    for _ in range(200):
        audio, text = crop_to_words(waveform, "one two three", [100, 200], rng)
        values = {"one": 1.0, "two": 2.0, "three": 3.0}
        assert sorted(set(audio.tolist())) == sorted(values[w] for w in text.split())
        seen.add(text)
    assert seen == {"one", "two", "three", "one two", "two three", "one two three"}
    assert crop_to_words(waveform, "single", [], rng) == (waveform, "single")


def test_reverberation_adds_a_decaying_tail_and_keeps_length_and_loudness():
    burst = torch.cat([torch.randn(1600), torch.zeros(14400)])  # 0.1 s of sound, then silence
    config = AugmentConfig(reverb_prob=1.0, reverb_rt60=(0.5, 0.5))
    out = perturb_waveform(burst, 16000, config, random.Random(3))
    assert out.numel() == burst.numel()
    assert out.pow(2).mean().item() == pytest.approx(burst.pow(2).mean().item(), rel=1e-3)
    early, late = out[1600:4800].pow(2).mean(), out[8000:11200].pow(2).mean()
    assert early > 10 * late > 0  # the room keeps ringing after the burst, and dies away


def test_band_limiting_removes_everything_above_4_khz():
    t = torch.arange(16000) / 16000
    waveform = torch.sin(2 * torch.pi * 1000 * t) + torch.sin(2 * torch.pi * 6000 * t)
    out = perturb_waveform(waveform, 16000, AugmentConfig(bandlimit_prob=1.0), random.Random(4))
    spectrum = torch.fft.rfft(out).abs()  # 1 Hz per bin
    assert spectrum[1000] > 1000 * spectrum[6000]
    assert spectrum[1000].item() == pytest.approx(torch.fft.rfft(waveform).abs()[1000].item(), rel=0.05)
