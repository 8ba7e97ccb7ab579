"""The command line as a user meets it: transcribe with a bad file among good ones, folders, lists
and manifests as input, --help, errors."""

import io
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

from asr.cli.main import build_parser, main
from asr.model.checkpoint import MODEL_FILENAME, load_model
from asr.utils.errors import AsrError


def asr(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs
    )


def test_transcribe_reports_a_bad_file_and_keeps_the_others(untrained_model, fsdd_clips, tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    good = [fsdd_clips / "0_george_10.wav", fsdd_clips / "7_theo_12.wav"]
    result = asr("transcribe", good[0], corrupt, empty, tmp_path / "missing.wav", good[1], "--model", untrained_model)
    assert result.returncode == 1
    out_lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in out_lines] == [str(good[0]), str(good[1])]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3, result.stderr
    assert "corrupt.wav" in errors[0] and "empty.flac" in errors[1] and "missing.wav: no such file" in errors[2]
    assert all(line.startswith("error: ") for line in errors)
    assert "Traceback" not in result.stderr


def test_transcribe_json_and_single_file(untrained_model, fsdd_clips):
    result = asr(
        "transcribe", fsdd_clips / "3_yweweler_15.wav", "--model", untrained_model / MODEL_FILENAME, "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["file"].endswith("3_yweweler_15.wav") and isinstance(row["text"], str)


def test_help_and_bad_config(tmp_path):
    result = asr("train", "--help")
    assert result.returncode == 0 and "--resume" in result.stdout and "--config" in result.stdout
    config = tmp_path / "c.toml"
    config.write_text("[train]\nepochs = 1\nlearnig_rate = 0.1\n")
    result = asr("train", "--config", config, "--train", "x.jsonl", "--dev", "y.jsonl", "--exp", tmp_path / "exp")
    assert result.returncode == 2
    assert "unknown key 'learnig_rate'" in result.stderr and "Traceback" not in result.stderr


def test_missing_model_is_a_clear_error(tmp_path, fsdd_clips):
    result = asr("transcribe", fsdd_clips / "0_george_10.wav", "--model", tmp_path)
    assert result.returncode == 2
    assert "no such model" in result.stderr


def test_checkpoints_load_without_unpickling_code(untrained_model, tmp_path):
    model = load_model(untrained_model)
    assert model.sample_rate == 8000 and model.metadata == {"note": "untrained"}

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    hostile = tmp_path / "hostile.pt"
    torch.save({"format": "asr-model-1", "payload": Exploit()}, hostile)
    with pytest.raises(AsrError, match="refused to load"):
        load_model(hostile)


COMMANDS = [
    "transcribe",
    "evaluate",
    "compare",
    "summarize",
    "prepare",
    "train",
    "average",
    "export",
    "lm",
    "tune-lm",
    "download",
    "import-kaldi",
    "shard",
    "synth",
    "probe-speakers",
]


def test_top_level_help_lists_the_commands_by_task():
    result = asr("--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line[:-1] for line in lines if line in ("use:", "train:", "data:", "research:")] == [
        "use",
        "train",
        "data",
        "research",
    ]
    listed = [line.split()[0] for line in lines if re.match(r"  [a-z]", line)]
    assert [name for name in listed if name in COMMANDS] == COMMANDS
    assert "{transcribe," not in result.stdout  # argparse's own flat list is hidden
    assert "examples:" in result.stdout and "asr transcribe" in result.stdout


def test_every_command_shows_its_defaults_and_no_measured_figures(capsys):
    helps = {}
    for name in COMMANDS + ["lm build", "lm mix", "lm prune"]:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*name.split(), "--help"])
        helps[name] = " ".join(capsys.readouterr().out.split())
    assert "(default: 1000)" in helps["compare"] and "(default: txt)" in helps["transcribe"]
    assert "(default: 0,0.25,0.5,1,1.5,2)" in helps["tune-lm"] and "(default: 3)" in helps["lm build"]
    for name, text in helps.items():
        assert "(default: None)" not in text and "(default: False)" not in text, name
        assert not re.search(r"\d ?%|did not", text), (name, re.findall(r".{40}\d ?%.{10}", text))
    for name in ("transcribe", "evaluate", "train", "summarize", "compare", "prepare", "lm", "tune-lm"):
        assert "examples:" in helps[name], name


def test_verbose_is_accepted_before_and_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["transcribe", "a.wav", "-v"]).verbose
    assert parser.parse_args(["-v", "transcribe", "a.wav"]).verbose
    assert not parser.parse_args(["transcribe", "a.wav"]).verbose
    assert parser.parse_args(["lm", "prune", "a.arpa", "--threshold", "1", "--out", "b.arpa", "--verbose"]).verbose


def test_short_output_and_format_flags(untrained_model, fsdd_clips, tmp_path, capsys):
    clips = [fsdd_clips / "0_george_10.wav", fsdd_clips / "7_theo_12.wav"]
    assert (
        main(
            ["transcribe", *map(str, clips), "--model", str(untrained_model), "-f", "vtt", "-o", str(tmp_path / "subs")]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "subs").iterdir()) == ["0_george_10.vtt", "7_theo_12.vtt"]
    assert (tmp_path / "subs" / "0_george_10.vtt").read_text().startswith("WEBVTT")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(c), "text": "zero"}) + "\n" for c in clips))
    assert (
        main(["evaluate", "--model", str(untrained_model), "--manifest", str(manifest), "-o", str(tmp_path / "ev")])
        == 0
    )
    assert json.loads((tmp_path / "ev" / "summary.json").read_text())["num_utterances"] == 2


@pytest.fixture
def clip_folder(fsdd_clips, tmp_path):
    """Two real clips, one in a subfolder, beside a file that is not audio."""
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(fsdd_clips / "3_yweweler_15.wav", folder / "sub" / "b.wav")
    shutil.copy(fsdd_clips / "0_george_10.wav", folder / "a.wav")
    (folder / "notes.txt").write_text("not audio\n")
    return folder


def test_transcribe_a_folder(untrained_model, clip_folder, tmp_path, capsys):
    assert main(["transcribe", str(clip_folder), "--model", str(untrained_model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(clip_folder / "a.wav"), str(clip_folder / "sub" / "b.wav")]
    assert (
        main(["transcribe", str(clip_folder), "--model", str(untrained_model), "-f", "srt", "-o", str(tmp_path / "o")])
        == 0
    )
    assert (tmp_path / "o" / "a.srt").is_file() and (tmp_path / "o" / "sub" / "b.srt").is_file()  # the layout kept
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["transcribe", str(empty), "--model", str(untrained_model)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {empty}: no audio files under this folder"
    assert main(["transcribe", str(empty), str(clip_folder / "a.wav"), "--model", str(untrained_model)]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: {empty}: no audio files under this folder"
    assert captured.out.startswith(f"{clip_folder / 'a.wav'}\t")


def test_transcribe_files_from_a_list_or_stdin(untrained_model, clip_folder, tmp_path, capsys, monkeypatch):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clip_folder / 'sub' / 'b.wav'}\n\n{clip_folder / 'a.wav'}\n")
    assert main(["transcribe", "--files-from", str(listing), "--model", str(untrained_model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(clip_folder / "sub" / "b.wav"), str(clip_folder / "a.wav")]
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{clip_folder / 'a.wav'}\n"))
    assert main(["transcribe", "--files-from", "-", "--model", str(untrained_model), "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(clip_folder / "a.wav")
    assert main(["transcribe", "--model", str(untrained_model)]) == 2
    assert "nothing to transcribe" in capsys.readouterr().err


def test_transcribe_a_manifest_resolves_relative_paths(untrained_model, clip_folder, tmp_path, capsys, monkeypatch):
    manifest = clip_folder / "m.jsonl"
    manifest.write_text(
        '{"audio_filepath": "sub/b.wav"}\n{"audio_filepath": "a.wav", "text": "zero"}\n{"audio_filepath": "gone.wav"}\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["transcribe", "--manifest", str(manifest), "--model", str(untrained_model), "-f", "json"]) == 1
    captured = capsys.readouterr()
    assert [row["file"] for row in json.loads(captured.out)] == [
        str(clip_folder / "sub" / "b.wav"),
        str(clip_folder / "a.wav"),
    ]
    assert captured.err.strip() == f"error: {clip_folder / 'gone.wav'}: no such file"
    manifest.write_text('{"audio_filepath": "a.wav"}\n["b.wav"]\n')
    assert main(["transcribe", "--manifest", str(manifest), "--model", str(untrained_model)]) == 2
    assert f"{manifest}, line 2: expected a JSON object" in capsys.readouterr().err
