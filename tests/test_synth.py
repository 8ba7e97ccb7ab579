"""Speech synthesis for training data: voice assignment, caching, failures, and the real engines."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from asr.errors import AsrError
from asr.synth import Voice, assign_voices, clip_name, synthesize, voice_pool

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def test_engines_take_turns_and_draws_are_seeded():
    texts = [f"sentence {i}" for i in range(30)]
    pairs = assign_voices(texts, ["espeak-ng", "flite", "festival"], per_text=2, seed=5)
    assert [t for t, _ in pairs] == [t for t in texts for _ in range(2)]
    engines = [v.engine for _, v in pairs]
    assert {engines.count(e) for e in ("espeak-ng", "flite", "festival")} == {20}
    assert pairs == assign_voices(texts, ["espeak-ng", "flite", "festival"], per_text=2, seed=5)
    assert pairs != assign_voices(texts, ["espeak-ng", "flite", "festival"], per_text=2, seed=6)
    espeak = [v for v in (v for _, v in pairs) if v.engine == "espeak-ng"]
    assert all(25 <= v.pitch <= 75 and 0.85 <= v.rate <= 1.2 for v in espeak)
    assert len({v.name for v in espeak}) > 10  # many different espeak-ng voices
    assert len(voice_pool(["espeak-ng"])) > 300


def test_many_readings_of_one_text_never_repeat_a_clip():
    # flite and festival have 7 voices between them: 100 readings of "seven" must still differ in rate
    pairs = assign_voices(["seven"], ["flite", "festival"], per_text=100, seed=0)
    assert len({clip_name(text, voice) for text, voice in pairs}) == 100


def test_the_cache_key_changes_with_every_voice_setting():
    voice = Voice("espeak-ng", "en-us+m3", 1.0, 50)
    names = {
        clip_name("hello", voice),
        clip_name("hello there", voice),
        clip_name("hello", Voice("espeak-ng", "en-us+m3", 1.1, 50)),
        clip_name("hello", Voice("espeak-ng", "en-us+m3", 1.0, 51)),
        clip_name("hello", Voice("espeak-ng", "en-gb+m3", 1.0, 50)),
    }
    assert len(names) == 5


def test_a_missing_engine_names_the_debian_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda program: None)
    with pytest.raises(AsrError, match=r"festival.*apt-get install .*festvox-kallpc16k"):
        synthesize([("hello", Voice("festival", "kal_diphone"))], tmp_path, jobs=1)


@needs_espeak
def test_espeak_speaks_caches_and_one_failure_spares_the_others(tmp_path):
    pairs = [
        ("one two three", Voice("espeak-ng", "en-us+f3", 1.0, 60)),
        ("this voice does not exist", Voice("espeak-ng", "xx-no-such-voice", 1.0, 50)),
        ("four five six", Voice("espeak-ng", "en-gb+m2", 1.2, 40)),
    ]
    utterances, failures = synthesize(pairs, tmp_path, jobs=2)
    assert [u.text for u in utterances] == ["one two three", "four five six"]
    assert len(failures) == 1 and "xx-no-such-voice" in failures[0]
    for utt in utterances:
        audio, rate = soundfile.read(utt.audio_filepath)
        assert len(audio) / rate == pytest.approx(utt.duration, abs=0.01)
        assert 0.5 < utt.duration < 5
        assert abs(audio).max() > 0.05  # speech, not silence
    assert utterances[0].speaker == "espeak-ng:en-us+f3"
    stamps = [Path(u.audio_filepath).stat().st_mtime_ns for u in utterances]
    again, _ = synthesize(pairs, tmp_path, jobs=2)
    assert [Path(u.audio_filepath).stat().st_mtime_ns for u in again] == stamps  # cached, not redone
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no temporary folders left behind


@needs_espeak
def test_synth_command_writes_a_manifest_from_a_text_sample(tmp_path):
    text = tmp_path / "sentences.txt"
    text.write_text("".join(f"number {i}\n" for i in range(10)) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "asr", "synth", "--text", str(text), "--max-texts", "4", "--engines", "espeak-ng",
         "--out", str(tmp_path / "clips"), "--jobs", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "clips" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 and "4 utterances" in result.stdout
