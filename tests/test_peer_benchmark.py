"""benchmarks/peer_pocketsphinx.py end to end on three real FSDD test clips: the table names the three
systems and the control model, every WER is a sensible number, and the shipped model gets spoken digits right."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

ROOT = Path(__file__).resolve().parents[1]

needs_pocketsphinx = pytest.mark.skipif(
    importlib.util.find_spec("pocketsphinx") is None, reason="pocketsphinx is not importable: pip install pocketsphinx"
)
DIGITS = "zero one two three four five six seven eight nine".split()
CLIPS = ["0_george_0", "4_jackson_1", "7_theo_2"]


@pytest.mark.slow
@needs_pocketsphinx
def test_peer_benchmark_tabulates_pocketsphinx_and_asr(shared_data, tmp_path):
    manifest = tmp_path / "fsdd3.jsonl"
    with manifest.open("w") as out:
        for clip in CLIPS:
            path = shared_data / "fsdd" / "recordings" / f"{clip}.wav"
            row = {
                "audio_filepath": str(path),
                "text": DIGITS[int(clip[0])],
                "duration": soundfile.info(str(path)).duration,
                "id": clip,
            }
            out.write(json.dumps(row) + "\n")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "peer_pocketsphinx.py"),
            str(manifest),
            "--json",
            str(tmp_path / "results.json"),
            "--out",
            str(tmp_path / "transcripts"),
            "--control",
            str(ROOT / "asr" / "pretrained" / "english"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("| set |"))
    for system in ("PocketSphinx WER", "asr greedy WER", "asr default WER", "control default WER"):
        assert system in header
    row = next(line for line in lines if line.startswith("| fsdd3 |"))
    cells = [cell.strip().strip("*").rstrip(" %").strip("*") for cell in row.strip("|").split("|")]
    assert cells[1] == "3 / 3"
    wers = [float(cell) for cell in cells[2:5]]
    assert all(0.0 <= wer <= 300.0 for wer in wers)  # percent; insertions can take WER past 100
    assert wers[2] <= 100 / 3  # the shipped model with its LM: at most one digit of three wrong
    assert float(cells[-1]) == wers[2]  # the control here is the same model with the same decoder
    assert "fsdd3: asr default / PocketSphinx WER =" in result.stdout

    (results,) = json.loads((tmp_path / "results.json").read_text())
    assert results["utterances"] == 3
    for system in ("pocketsphinx", "asr_greedy", "asr_default", "control_default"):
        assert results[system]["words"] == 3 and results[system]["rtf"] > 0 and results[system]["wer"] >= 0
        rows = (tmp_path / "transcripts" / "fsdd3" / f"{system}.jsonl").read_text().splitlines()
        assert [json.loads(r)["id"] for r in rows] == CLIPS
    assert results["asr_default"]["decoder"]["kind"] == "beam" and results["asr_greedy"]["decoder"] == {
        "kind": "greedy"
    }
