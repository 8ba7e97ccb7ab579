"""Kaldi data directories (wav.scp, text, utt2spk, segments) -> manifests, from real yesno recordings."""

import json
import subprocess
import sys

import pytest
import torch

from asr.audio import load_audio
from asr.corpora.kaldi import import_kaldi
from asr.data import SpeechDataset, read_manifest
from asr.errors import AsrError
from asr.features import FeatureConfig, LogMel
from asr.text import CharTokenizer

RECORDINGS = ["0_0_0_0_1_1_1_1", "0_0_1_0_1_0_1_1", "1_1_1_1_0_0_1_0"]


def asr(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


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
        ("wav.scp", "rec1 /x/a.wav\nrec2 sox /x/b.wav -t wav - |\n", r"wav.scp:2: rec2 is a command .*never runs commands"),
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
