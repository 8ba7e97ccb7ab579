"""Kaldi data directories (wav.scp, text, utt2spk, segments) -> manifests, from real yesno recordings."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from asr.audio.io import load_audio
from asr.data.corpora.kaldi import import_kaldi
from asr.data.dataset import SpeechDataset, read_manifest
from asr.data.text import CharTokenizer
from asr.features.logmel import FeatureConfig, LogMel
from asr.utils.errors import AsrError

RECORDINGS = ["0_0_0_0_1_1_1_1", "0_0_1_0_1_0_1_1", "1_1_1_1_0_0_1_0"]


def asr(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def words(recording: str) -> list[str]:
    return ["yes" if bit == "1" else "no" for bit in recording.split("_")]


@pytest.fixture
def kaldi_dir(shared_data, tmp_path):
    """A data directory as Kaldi writes it: one relative wav.scp path, segments, a stray text line."""
    audio = shared_data / "yesno" / "waves_yesno"
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / f"{RECORDINGS[2]}.wav").write_bytes((audio / f"{RECORDINGS[2]}.wav").read_bytes())
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text(
        f"rec1 {audio / RECORDINGS[0]}.wav\n"
        f"rec2 {audio / RECORDINGS[1]}.wav\n"
        f"rec3 audio/{RECORDINGS[2]}.wav\n"  # relative to the folder the command runs in, as in Kaldi
    )
    segments = {  # utterance: (recording, start, end); the texts are the words of each half
        "spk1-rec1-a": ("rec1", 0.0, 3.2, " ".join(words(RECORDINGS[0])[:4])),
        "spk1-rec1-b": ("rec1", 3.2, -1, " ".join(words(RECORDINGS[0])[4:])),
        "spk1-rec2-a": ("rec2", 0.5, 2.75, "no no yes"),
        "spk2-rec3-a": ("rec3", 1.0, 4.0, "yes yes no"),
        "spk2-rec3-z": ("rec3", 4.0, 5.0, None),  # no transcript: skipped
    }
    (data / "segments").write_text("".join(f"{u} {r} {s} {e}\n" for u, (r, s, e, _) in segments.items()))
    (data / "text").write_text(
        "".join(f"{u} {t}\n" for u, (_, _, _, t) in segments.items() if t) + "spk9-gone some words\n"
    )
    (data / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in segments))
    return data


def test_import_with_segments_reads_only_each_segment(kaldi_dir, tmp_path, shared_data):
    manifest = tmp_path / "train.jsonl"
    result = asr("import-kaldi", kaldi_dir, "--out", manifest, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{manifest}: 4 utterances"
    assert "1 utterance(s) have no line in text" in result.stderr and "spk2-rec3-z" in result.stderr
    assert "1 line(s) of text name no recording" in result.stderr and "spk9-gone" in result.stderr
    rows = {row["id"]: row for row in map(json.loads, manifest.read_text().splitlines())}
    assert sorted(rows) == ["spk1-rec1-a", "spk1-rec1-b", "spk1-rec2-a", "spk2-rec3-a"]
    first = rows["spk1-rec1-a"]
    assert first["offset"] == 0.0 and first["duration"] == 3.2 and first["speaker"] == "spk1"
    assert first["text"] == "no no no no"
    assert rows["spk1-rec1-b"]["offset"] == 3.2 and rows["spk1-rec1-b"]["duration"] == pytest.approx(6.35 - 3.2)
    assert rows["spk2-rec3-a"]["audio_filepath"] == str(tmp_path / "audio" / f"{RECORDINGS[2]}.wav")

    utterances = {u.id: u for u in read_manifest(manifest)}
    whole = load_audio(shared_data / "yesno" / "waves_yesno" / f"{RECORDINGS[1]}.wav", 8000)
    segment = utterances["spk1-rec2-a"].load(8000)
    assert segment.shape == (18000,)  # 2.25 s at 8 kHz
    assert torch.equal(segment, whole[4000:22000])
    log_mel = LogMel(FeatureConfig(sample_rate=8000, n_mels=40))
    dataset = SpeechDataset(list(utterances.values()), log_mel, CharTokenizer())
    frames = {u.id: dataset[i][0].shape[0] for i, u in enumerate(dataset.utterances)}
    assert frames["spk1-rec2-a"] == log_mel.num_frames(18000)
    assert frames["spk2-rec3-a"] == log_mel.num_frames(24000)


def test_without_segments_each_recording_is_an_utterance(kaldi_dir, tmp_path):
    (kaldi_dir / "segments").unlink()
    (kaldi_dir / "text").write_text("rec1 NO NO NO NO YES YES YES YES\nrec2 no no yes no yes no yes yes\n")
    (kaldi_dir / "utt2spk").unlink()
    manifest = tmp_path / "m.jsonl"
    result = asr("import-kaldi", kaldi_dir, "--out", manifest, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["rec1", "rec2"]
    assert all("offset" not in row and "speaker" not in row for row in rows)
    assert rows[0]["duration"] == 6.35 and rows[0]["text"] == "NO NO NO NO YES YES YES YES"


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("wav.scp", "rec1 /x/a.wav\nrec2 rm -rf / |\n", r"wav.scp:2: rec2 is a command .*never runs commands"),
        ("wav.scp", "rec1 /x/raw.ark:1234\n", r"wav.scp:1: rec1 points into a Kaldi archive"),
        ("wav.scp", "rec1\n", r"wav.scp:1: expected '<id> <value>'"),
        ("segments", "u1 rec1 2.0 1.0\n", r"segments:1: u1 has start 2.0 and end 1.0"),
        ("segments", "u1 rec1 0 1\nu2 rec7 0 1\n", r"segments:2: recording 'rec7' is not in wav.scp"),
        ("segments", "u1 rec1 zero one\n", r"segments:1: start and end must be seconds"),
        ("text", "u1 yes\nu1 no\n", r"text:2: 'u1' repeats line 1"),
    ],
)
def test_bad_lines_are_refused_naming_the_line(kaldi_dir, tmp_path, monkeypatch, name, content, message):
    monkeypatch.chdir(tmp_path)
    (kaldi_dir / name).write_text(content)
    with pytest.raises(AsrError, match=message):
        import_kaldi(kaldi_dir, tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()


def test_a_pipe_command_is_a_one_line_cli_error(kaldi_dir, tmp_path):
    (kaldi_dir / "wav.scp").write_text("rec1 /x/a.wav\nrec2 flac -c -d -s /x/b.flac |\n")
    result = asr("import-kaldi", kaldi_dir, "--out", tmp_path / "m.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "wav.scp:2: rec2 is a command" in result.stderr and "Traceback" not in result.stderr


def test_not_a_kaldi_dir(tmp_path):
    result = asr("import-kaldi", tmp_path, "--out", tmp_path / "m.jsonl")
    assert result.returncode == 2 and "not a Kaldi data directory (no wav.scp)" in result.stderr


# ----------------------------------------------------------------------------- decoding pipes


def _sphere(source, target, channels=1):
    """A NIST SPHERE copy of a real recording (the format sph2pipe reads), PCM as LDC ships it."""
    samples, rate = soundfile.read(str(source), dtype="int16")
    if channels == 2:
        samples = np.stack([samples, samples // 2], axis=1)
    soundfile.write(str(target), samples, rate, format="NIST", subtype="PCM_16")
    return target


@pytest.fixture
def fake_tools(tmp_path):
    """``sox``, ``sph2pipe``, ``rm`` and ``flac`` on PATH that only leave a marker when run."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("sox", "sph2pipe", "rm", "flac", "sh", "bash"):
        tool = folder / name
        tool.write_text(f"#!/bin/sh\necho {name} >> {tmp_path / 'ran'}\n")
        tool.chmod(0o755)
    return folder


def test_sox_and_sph2pipe_lines_are_read_without_running_them(shared_data, tmp_path, fake_tools):
    audio = shared_data / "yesno" / "waves_yesno"
    (tmp_path / "audio").mkdir()
    local = tmp_path / "audio" / f"{RECORDINGS[2]}.wav"
    local.write_bytes((audio / f"{RECORDINGS[2]}.wav").read_bytes())
    sphere = _sphere(audio / f"{RECORDINGS[1]}.wav", tmp_path / "audio" / "rec.sph")
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(
        f"rec1 sox {audio / RECORDINGS[0]}.wav -t wav - |\n"
        f"rec2 /opt/kaldi/tools/sph2pipe_v2.5/sph2pipe -f wav -p -c 1 {sphere} |\n"
        f"rec3 sox 'audio/{RECORDINGS[2]}.wav' -t wav -r 16000 -b 16 -c 1 -e signed-integer - remix 1 |\n"
        f"rec4 sph2pipe -f wav audio/rec.sph|\n"
    )
    (data / "text").write_text(
        "".join(f"rec{i} {' '.join(words(r))}\n" for i, r in enumerate([*RECORDINGS, RECORDINGS[1]], start=1))
    )
    env = {**os.environ, "PATH": f"{fake_tools}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [sys.executable, "-m", "asr", "import-kaldi", str(data), "--out", str(tmp_path / "m.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "ran").exists()  # no sox, sph2pipe or shell was started
    rows = {u.id: u for u in read_manifest(tmp_path / "m.jsonl")}
    assert {k: u.audio_filepath for k, u in rows.items()} == {
        "rec1": str((audio / f"{RECORDINGS[0]}.wav").resolve()),
        "rec2": str(sphere.resolve()),
        "rec3": str(local.resolve()),
        "rec4": str(sphere.resolve()),
    }
    assert rows["rec1"].duration == 6.35
    whole = load_audio(audio / f"{RECORDINGS[1]}.wav", 8000)
    assert torch.equal(rows["rec2"].load(8000), whole)  # the SPHERE file read directly: the same samples
    assert torch.equal(rows["rec1"].load(8000), load_audio(audio / f"{RECORDINGS[0]}.wav", 8000))


@pytest.mark.parametrize(
    "command,why",
    [
        ("rm -rf / |", "runs 'rm', which is neither sph2pipe nor sox"),
        ("sox {wav} -t wav - ; rm -rf ~ |", r"uses shell syntax \(; ~\)"),
        ("sox $(touch {marker}) -t wav - |", r"uses shell syntax \(\$ \( \)\)"),
        ("sox `touch {marker}` -t wav - |", "uses shell syntax"),
        ("sox {wav} -t wav - | tee {marker} |", r"uses shell syntax \(\|\)"),
        ("sox {wav} -t wav {marker} |", "makes sox write to"),
        ("sox {wav} -t wav - vol 3 |", "applies sox effects 'vol 3'"),
        ("sox {wav} -t mp3 - |", "passes sox -t mp3"),
        ("sox -v 2 {wav} -t wav - |", "options before the input file"),
        ("sph2pipe -f wav -t 0:5 {wav} |", "passes sph2pipe -t 0:5"),
        ("sph2pipe -f wav {wav} {marker} |", "is not 'sph2pipe \\[options\\] FILE'"),
        ("sox 'unterminated -t wav - |", "cannot be split into words"),
    ],
)
def test_every_other_command_is_refused_naming_the_line(shared_data, tmp_path, command, why):
    wav = shared_data / "yesno" / "waves_yesno" / f"{RECORDINGS[0]}.wav"
    marker = tmp_path / "ran"
    data = tmp_path / "data"
    data.mkdir()
    line = "rec2 " + command.format(wav=wav, marker=marker)
    (data / "wav.scp").write_text(f"rec1 {wav}\n{line}\n")
    (data / "text").write_text("rec1 no\nrec2 no\n")
    with pytest.raises(AsrError) as caught:
        import_kaldi(data, tmp_path / "m.jsonl")
    message = str(caught.value)
    assert message.startswith(f"{data / 'wav.scp'}:2: rec2 is a command ({line[5:]!r}) that ")
    assert re.search(why, message) and "asr never runs commands from wav.scp" in message
    assert not marker.exists() and not (tmp_path / "m.jsonl").exists()


def test_a_channel_asr_cannot_select_and_shorten_sphere_are_refused(shared_data, tmp_path):
    wav = shared_data / "yesno" / "waves_yesno" / f"{RECORDINGS[0]}.wav"
    stereo = _sphere(wav, tmp_path / "stereo.sph", channels=2)
    data = tmp_path / "data"
    data.mkdir()
    (data / "text").write_text("rec1 no\n")
    for line, message in [
        (
            f"sph2pipe -f wav -p -c 1 {stereo} |",
            r"wav.scp:1: rec1: the command selects channel 1 of a 2-channel "
            r"file, and asr reads every channel mixed to mono",
        ),
        (f"sph2pipe -f wav -c 2 {wav} |", r"wav.scp:1: rec1: the command selects channel 2 of a 1-channel file"),
        (f"sox {stereo} -t wav - remix 2 |", r"selects channel 2 of a 2-channel file"),
    ]:
        (data / "wav.scp").write_text(f"rec1 {line}\n")
        with pytest.raises(AsrError, match=message):
            import_kaldi(data, tmp_path / "m.jsonl")
    # sox -c 1 mixes down, as loading does: a stereo file is fine there
    (data / "wav.scp").write_text(f"rec1 sox {stereo} -t wav -c 1 - |\n")
    assert import_kaldi(data, tmp_path / "m.jsonl") == 1
    shorten = tmp_path / "compressed.sph"
    shorten.write_bytes(
        b"NIST_1A\n   1024\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n".ljust(1024) + b"\x00" * 64
    )
    (data / "wav.scp").write_text(f"rec1 sph2pipe -f wav -p {shorten} |\n")
    with pytest.raises(AsrError, match=r"wav.scp:1: rec1: .*compressed.sph is shorten-compressed SPHERE"):
        import_kaldi(data, tmp_path / "m2.jsonl")
