"""LibriSpeech's layout, built from real LJ Speech and AN4 clips: prepare, the recipe, the download."""

import csv
import dataclasses
import functools
import http.server
import json
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import soundfile

from asr.audio.io import load_audio
from asr.data.corpora import prepare_corpus
from asr.data.corpora.librispeech import download_urls
from asr.data.text import normalize_text
from asr.train.config import TrainConfig, load_config
from asr.utils.errors import AsrError

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "librispeech"


def lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def write_chapter(root: Path, subset: str, speaker: str, chapter: str, clips: list[tuple[Path, str]]) -> list[str]:
    """One ``<subset>/<speaker>/<chapter>/`` folder: 16 kHz FLAC files and the ``.trans.txt``."""
    folder = root / "LibriSpeech" / subset / speaker / chapter
    folder.mkdir(parents=True)
    ids, transcript = [], []
    for n, (wav, text) in enumerate(clips):
        utt_id = f"{speaker}-{chapter}-{n:04d}"
        soundfile.write(folder / f"{utt_id}.flac", load_audio(wav, 16000).numpy(), 16000, subtype="PCM_16")
        transcript.append(f"{utt_id} {normalize_text(text).upper()}")
        ids.append(utt_id)
    (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(transcript) + "\n")
    return ids


@pytest.fixture(scope="module")
def librispeech(shared_data, tmp_path_factory):
    """dev-clean: 10 LJ Speech clips (one reader, two chapters); test-clean: 4 AN4 clips of two
    speakers; train-clean-100: 4 more LJ Speech clips. One transcribed utterance has no audio."""
    root = tmp_path_factory.mktemp("corpus")
    lj = shared_data / "ljspeech" / "LJSpeech-1.1"
    with (lj / "metadata.csv").open(encoding="utf-8", newline="") as rows:
        metadata = {row[0]: row[2] for row in csv.reader(rows, delimiter="|", quoting=csv.QUOTE_NONE)}
    clips = [(lj / "wavs" / f"LJ001-{n:04d}.wav", metadata[f"LJ001-{n:04d}"]) for n in range(1, 15)]
    write_chapter(root, "dev-clean", "1272", "128104", clips[:6])
    write_chapter(root, "dev-clean", "1272", "135031", clips[6:10])
    write_chapter(root, "train-clean-100", "19", "198", clips[10:])
    an4 = shared_data / "an4"
    texts = {}
    for line in (an4 / "etc" / "an4_train.transcription").read_text().splitlines():
        text, utt = line.rsplit("(", 1)
        texts[utt.rstrip(")").strip()] = text.replace("<s>", "").replace("</s>", "")
    for speaker, an4_speaker in (("2961", "fash"), ("8224", "fbbh")):
        wavs = sorted((an4 / "wav" / "an4_clstk" / an4_speaker).glob("*.wav"))[:2]
        write_chapter(root, "test-clean", speaker, "960", [(w, texts[w.stem]) for w in wavs])
    # a partial copy: one transcribed utterance whose audio is missing
    (root / "LibriSpeech" / "test-clean" / "2961" / "960" / "2961-960-0001.flac").unlink()
    (root / "LibriSpeech" / "README.TXT").write_text("LibriSpeech ASR corpus (test copy)\n")
    return root


def test_prepare_writes_one_manifest_per_subset(librispeech, tmp_path, caplog):
    counts = prepare_corpus("librispeech", librispeech, tmp_path)
    assert counts == {"dev-clean": 10, "test-clean": 3, "train-clean-100": 4, "train": 4}
    assert "librispeech test-clean: 1 transcribed utterance(s) have no audio" in caplog.text
    dev = lines(tmp_path / "dev-clean.jsonl")
    assert [row["id"] for row in dev[:2]] == ["1272-128104-0000", "1272-128104-0001"]
    assert {row["speaker"] for row in dev} == {"1272"}
    assert dev[0]["text"].startswith("PRINTING IN THE ONLY SENSE WITH WHICH WE ARE AT PRESENT CONCERNED")
    first = Path(dev[0]["audio_filepath"])
    assert first.is_absolute() and first.suffix == ".flac"
    assert dev[0]["duration"] == pytest.approx(soundfile.info(str(first)).duration, abs=1e-4)
    test = lines(tmp_path / "test-clean.jsonl")
    assert {row["speaker"] for row in test} == {"2961", "8224"}
    assert [row["id"] for row in test] == ["2961-960-0000", "8224-960-0000", "8224-960-0001"]
    assert lines(tmp_path / "train.jsonl") == lines(tmp_path / "train-clean-100.jsonl")


def test_cli_prepare_and_a_malformed_transcript_line(librispeech, tmp_path):
    corpus = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(librispeech), str(corpus)], check=True)
    transcript = corpus / "LibriSpeech" / "dev-clean" / "1272" / "135031" / "1272-135031.trans.txt"
    transcript.write_bytes(transcript.read_bytes() + b"1272-135031-0009\n\xff\xfe broken\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr",
            "prepare",
            "librispeech",
            "--src",
            str(corpus / "LibriSpeech"),
            "--out",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'data' / 'dev-clean.jsonl'}: 10 utterances" in result.stdout
    assert "1272-135031.trans.txt:5: expected '<speaker>-<chapter>-<n> TEXT'" in result.stderr
    assert "1272-135031.trans.txt:6: not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_subset_is_a_clear_error(tmp_path):
    (tmp_path / "LibriSpeech" / "dev-clean").mkdir(parents=True)
    with pytest.raises(AsrError, match="no LibriSpeech subset here"):
        prepare_corpus("librispeech", tmp_path, tmp_path / "out")


def test_download_addresses():
    assert download_urls(["dev-clean"]) == ["https://www.openslr.org/resources/12/dev-clean.tar.gz"]
    assert download_urls(["test-other"], mirror="https://us.openslr.org/resources/12/") == [
        "https://us.openslr.org/resources/12/test-other.tar.gz"
    ]
    with pytest.raises(AsrError, match="unknown LibriSpeech subset"):
        download_urls(["train-clean-1000"])


@pytest.fixture
def mirror(librispeech, tmp_path):
    """OpenSLR-style archives, one per subset (each unpacks into LibriSpeech/), served on 127.0.0.1."""
    site = tmp_path / "site"
    site.mkdir()
    for subset in ("dev-clean", "test-clean"):
        with tarfile.open(site / f"{subset}.tar.gz", "w:gz") as tar:
            tar.add(librispeech / "LibriSpeech" / subset, arcname=f"LibriSpeech/{subset}")
            tar.add(librispeech / "LibriSpeech" / "README.TXT", arcname="LibriSpeech/README.TXT")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow
def test_recipe_downloads_subsets_and_prepares(mirror, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "SUBSETS": "dev-clean test-clean", "MIRROR": mirror}
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--stop-stage", "1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    root = work / "downloads" / "librispeech"
    assert sorted(p.name for p in (root / "LibriSpeech").iterdir()) == ["README.TXT", "dev-clean", "test-clean"]
    assert (work / "data" / "librispeech" / ".src").read_text().strip() == "downloads/librispeech/LibriSpeech"
    assert len(lines(work / "data" / "librispeech" / "dev-clean.jsonl")) == 10
    assert len(lines(work / "data" / "librispeech" / "test-clean.jsonl")) == 3
    # each archive is fetched once: a second run with the server's files gone still prepares
    for archive in (tmp_path / "site").iterdir():
        archive.unlink()
    again = subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--stop-stage", "1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr


def test_recipe_configs_load():
    cpu = load_config(RECIPE / "conf_cpu.toml")
    assert cpu.tokenizer.kind == "bpe" and cpu.features.sample_rate == 16000 and cpu.train.device == "cpu"
    if "precision" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        pytest.skip("conf_gpu.toml sets [train] precision, which this branch's TrainConfig does not have yet")
    gpu = load_config(RECIPE / "conf_gpu.toml")
    assert gpu.train.precision == "bf16" and gpu.model.hidden_size > cpu.model.hidden_size
