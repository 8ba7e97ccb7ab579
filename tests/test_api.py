"""The Python API gives what the command line gives, on real speech with the model that ships."""

import json
import subprocess
import sys

import asr
from asr.data.text import normalize_text

CLIP = "LJ002-0150"  # held out of the shipped model's training (LJ Speech chapter LJ002, test part)


def test_public_api_is_small_and_named():
    assert asr.__all__ == ["load_model", "evaluate", "__version__"]
    assert callable(asr.load_model) and callable(asr.evaluate)


def test_load_model_transcribe_equals_the_command_line(shared_data):
    clip = shared_data / "ljspeech" / "LJSpeech-1.1" / "wavs" / f"{CLIP}.wav"
    model = asr.load_model()
    result = model.transcribe(clip)
    assert model.decoder_config.kind == "beam" and model.decoder_config.lm  # the shipped LM, as the CLI uses
    cli = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", str(clip), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = json.loads(cli.stdout)
    assert result.text == printed["text"] and result.text
    assert [w.word for w in result.words] == [w["word"] for w in printed["words"]] == result.text.split()
    assert all(0 <= w.start < w.end <= result.segments[-1].end + 0.05 for w in result.words)


def test_evaluate_scores_a_manifest_like_the_command_line(shared_data, tmp_path):
    wavs = shared_data / "ljspeech" / "LJSpeech-1.1" / "wavs"
    metadata = (shared_data / "ljspeech" / "LJSpeech-1.1" / "metadata.csv").read_text(encoding="utf-8")
    texts = {line.split("|")[0]: line.split("|")[2] for line in metadata.splitlines()}
    manifest = tmp_path / "m.jsonl"
    clips = ["LJ002-0150", "LJ002-0151", "LJ002-0152"]
    manifest.write_text(
        "".join(
            json.dumps({"audio_filepath": str(wavs / f"{c}.wav"), "duration": 1.0, "text": texts[c]}) + "\n"
            for c in clips
        )
    )
    summary = asr.evaluate(manifest, tmp_path / "api", model=asr.load_model(kind="greedy"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "evaluate",
            "--manifest",
            str(manifest),
            "--out",
            str(tmp_path / "cli"),
            "--decoder",
            "greedy",
        ],
        capture_output=True,
        check=True,
    )
    cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert summary["num_utterances"] == 3 and summary["num_words"] == len(
        normalize_text(" ".join(texts[c] for c in clips)).split()
    )
    assert (summary["wer"], summary["cer"], summary["decoder"]["kind"]) == (cli["wer"], cli["cer"], "greedy")
