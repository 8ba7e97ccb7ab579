"""New training voices from recorded ones (asr/voices.py): WORLD pitch and formant conversion."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from asr.data import Utterance, write_manifest
from asr.errors import AsrError
from asr.voices import VoiceChange, change_voice, plan_conversions, stretch_frequency

pyworld = pytest.importorskip("pyworld")  # the voices extra; the dev extra installs it, so CI runs these
CLIP = "3_george_10.wav"  # a real recording: 8 kHz, 0.47 s


def median_pitch(samples: np.ndarray, rate: int) -> float:
    """WORLD's median F0 (Hz) over the voiced frames."""
    audio = np.ascontiguousarray(samples, dtype=np.float64)
    pitch, times = pyworld.dio(audio, rate, frame_period=5.0)
    pitch = pyworld.stonemask(audio, pitch, times, rate)
    return float(np.median(pitch[pitch > 0]))


def spectral_centroid(samples: np.ndarray, rate: int) -> float:
    """Power-weighted mean frequency (Hz) of the whole clip."""
    power = np.abs(np.fft.rfft(samples)) ** 2
    return float(np.sum(np.fft.rfftfreq(len(samples), 1 / rate) * power) / np.sum(power))


@pytest.fixture(scope="module")
def clip(fsdd_clips):
    samples, rate = soundfile.read(str(fsdd_clips / CLIP), dtype="float64")
    return samples, rate


def test_stretch_frequency_reads_each_bin_from_bin_k_over_ratio():
    ramp = np.arange(9, dtype=float)[None, :]  # one frame whose value at bin k is k
    np.testing.assert_allclose(stretch_frequency(ramp, 2.0), [[0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]])
    np.testing.assert_allclose(stretch_frequency(ramp, 0.5), [[0, 2, 4, 6, 8, 8, 8, 8, 8]])  # past the end: the last bin
    np.testing.assert_allclose(stretch_frequency(ramp, 1.0), ramp)


def test_pitch_changes_by_the_ratio_and_length_and_level_stay(clip):
    samples, rate = clip
    before = median_pitch(samples, rate)
    for ratio in (0.7, 1.5):
        converted = change_voice(samples, rate, VoiceChange(ratio, 1.0, 1.0))
        assert converted.shape == samples.shape
        assert np.sqrt(np.mean(converted**2)) == pytest.approx(np.sqrt(np.mean(samples**2)), rel=1e-6)
        assert median_pitch(converted, rate) == pytest.approx(ratio * before, rel=0.08)


def test_formant_ratio_moves_the_spectrum_up_or_down_at_the_same_pitch(clip):
    samples, rate = clip
    centroid = {ratio: spectral_centroid(change_voice(samples, rate, VoiceChange(1.0, ratio, 1.0)), rate)
                for ratio in (0.85, 1.0, 1.2)}
    assert centroid[0.85] < 0.95 * centroid[1.0] and centroid[1.2] > 1.05 * centroid[1.0]
    assert median_pitch(change_voice(samples, rate, VoiceChange(1.0, 1.2, 1.0)), rate) == pytest.approx(
        median_pitch(samples, rate), rel=0.08)


def test_unchanged_voice_resynthesizes_the_same_spectrum(clip):
    samples, rate = clip
    same = change_voice(samples, rate, VoiceChange(1.0, 1.0, 1.0))
    def log_spectrogram(x):
        frames = np.lib.stride_tricks.sliding_window_view(x, 200)[::80] * np.hanning(200)
        return np.log(np.abs(np.fft.rfft(frames)) ** 2 + 1e-8)
    correlation = np.corrcoef(log_spectrogram(samples).ravel(), log_spectrogram(same).ravel())[0, 1]
    assert correlation > 0.8


def test_plan_gives_each_voice_a_share_of_its_own_speakers_clips():
    clips = [Utterance(f"/x/{s}_{i}.wav", "one", 0.5, s, f"{s}_{i}") for s in ("ann", "bob") for i in range(10)]
    clips += [Utterance(f"/x/u_{i}.wav", "two", 0.5, None, f"u_{i}") for i in range(4)]
    plan = plan_conversions(clips, voices_per_speaker=3, share=0.5, seed=0)
    voices = {}
    for conversion in plan:
        voices.setdefault(conversion.speaker, []).append(conversion)
    assert len(voices) == 9  # three voices each for ann, bob and the unlabelled clips
    for label, conversions in voices.items():
        source_speaker = label.split("~")[0]
        assert {c.change for c in conversions} == {conversions[0].change}  # one change per voice
        assert all((c.source.speaker or "unlabelled") == source_speaker for c in conversions)
        assert len({c.source.id for c in conversions}) == len(conversions) == (2 if source_speaker == "unlabelled" else 5)
    assert plan == plan_conversions(clips, 3, 0.5, seed=0)
    assert plan != plan_conversions(clips, 3, 0.5, seed=1)
    with pytest.raises(AsrError, match="share"):
        plan_conversions(clips, 3, 1.5, seed=0)


def test_command_converts_every_readable_clip_names_the_bad_one_and_caches(fsdd_clips, tmp_path):
    names = ["0_george_10", "1_george_11", "2_jackson_12", "5_jackson_13"]
    words = {"0": "zero", "1": "one", "2": "two", "5": "five"}
    clips = [Utterance(str(fsdd_clips / f"{n}.wav"), words[n[0]], 0.5, n.split("_")[1], n) for n in names]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt not really audio")
    clips.append(Utterance(str(corrupt), "nine", 0.5, "george", "corrupt"))
    write_manifest(tmp_path / "train.jsonl", clips)
    out = tmp_path / "voices"

    def run():
        return subprocess.run([sys.executable, "-m", "asr", "convert-voices", "--manifest", str(tmp_path / "train.jsonl"),
                               "--out", str(out), "--voices-per-speaker", "2", "--share", "1", "--jobs", "2"],
                              capture_output=True, text=True, timeout=300)

    first = run()
    assert first.returncode == 1
    assert "corrupt.wav" in first.stderr and "Traceback" not in first.stderr
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 + 2 * 2  # george's two good clips and jackson's two, read by two voices each
    assert first.stderr.count("error: ") == 2  # the corrupt clip, once per voice that was to read it
    assert len({r["speaker"] for r in rows}) == 4
    for row in rows:
        info = soundfile.info(row["audio_filepath"])
        assert info.samplerate == 8000 and row["text"] in words.values()
    made = {r["audio_filepath"]: os.stat(r["audio_filepath"]).st_mtime_ns for r in rows}
    second = run()
    assert second.returncode == 1
    assert {p: os.stat(p).st_mtime_ns for p in made} == made  # the cache: nothing converted twice
