"""Hostile input through the real command line: every broken item gets a one-line error naming
it, every good item still gets its result, and no traceback reaches the user.

The broken files: random bytes named .wav, a header cut short, zero bytes, a WAV with no
frames, NaN and infinite float samples, headers claiming 1 Hz and 10 MHz, two hours of
silence (FLAC, so the file is 180 kB; too long for training and evaluation, while
`transcribe` streams it) and a folder named like a file, with no audio in it. The broken
manifest lines: invalid JSON, a JSON array, missing fields, wrong types, NaN duration,
duplicate ids, bytes that are not UTF-8, and transcripts without a usable character.
"""

import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from asr.model.checkpoint import MODEL_FILENAME

GOOD_CLIPS = ["0_george_10", "1_jackson_11", "6_nicolas_12", "8_theo_13"]
DIGITS = {"0": "zero", "1": "one", "6": "six", "8": "eight"}


def asr(*args, cwd=None):
    result = subprocess.run(
        [sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "a bug in asr" not in result.stderr, result.stderr
    return result


def wav_header_bytes(samples: np.ndarray, rate: int) -> bytes:
    """A 16-bit mono PCM WAV whose header states ``rate`` (any value, however absurd)."""
    data = samples.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2 % (1 << 32), 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def write_silence(path, seconds: int, rate: int = 8000) -> None:
    """``seconds`` of digital silence, written a minute at a time."""
    minute = np.zeros(rate * 60, dtype=np.int16)
    with soundfile.SoundFile(str(path), "w", rate, 1, "PCM_16", format=path.suffix[1:].upper()) as out:
        for _ in range(seconds // 60):
            out.write(minute)


def make_broken_files(folder, real_wav) -> dict[str, str]:
    """Broken audio in ``folder``: file name -> what its one-line error must say."""
    rng = np.random.default_rng(0)
    real = real_wav.read_bytes()
    (folder / "random.wav").write_bytes(rng.bytes(4096))
    (folder / "header_cut.wav").write_bytes(real[:20])
    (folder / "zero_bytes.wav").write_bytes(b"")
    soundfile.write(folder / "no_frames.wav", np.zeros(0, dtype=np.float32), 8000)
    noise = (rng.standard_normal(8000) * 0.1).astype(np.float32)
    for name, value in (("nan.wav", np.nan), ("inf.wav", np.inf)):
        samples = noise.copy()
        samples[100] = value
        soundfile.write(folder / name, samples, 8000, subtype="FLOAT")
    speech = rng.integers(-1000, 1000, 16000)
    (folder / "rate_1hz.wav").write_bytes(wav_header_bytes(speech, 1))
    (folder / "rate_10mhz.wav").write_bytes(wav_header_bytes(speech, 10_000_000))
    write_silence(folder / "two_hours_silence.flac", 2 * 3600)
    (folder / "a_folder.wav").mkdir()
    return {
        "random.wav": "cannot read audio",
        "header_cut.wav": "cannot read audio",
        "zero_bytes.wav": "cannot read audio",
        "no_frames.wav": "holds no audio samples",
        "nan.wav": "NaN or infinite samples",
        "inf.wav": "NaN or infinite samples",
        "rate_1hz.wav": "sample rate of 1 Hz",
        "rate_10mhz.wav": "sample rate of 10000000 Hz",
        "two_hours_silence.flac": "120 minutes of audio",
        "a_folder.wav": "no audio files under this folder",
    }


@pytest.fixture(scope="module")
def model(untrained_model):
    """An untrained packaged model: decoding garbage is fine, crashing is not."""
    return untrained_model


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, fsdd_clips):
    folder = tmp_path_factory.mktemp("hostile")
    return folder, make_broken_files(folder, fsdd_clips / "0_george_10.wav")


@pytest.mark.slow
def test_transcribe_names_each_broken_file_and_keeps_the_others(hostile, model, fsdd_clips, tmp_path):
    folder, broken = hostile
    long_silence = folder / "two_hours_silence.flac"  # transcribe streams long files: an empty transcript
    broken = {name: why for name, why in broken.items() if name != long_silence.name}
    data_cut = tmp_path / "data_cut.wav"  # the header promises more samples than the file holds: readable
    data_cut.write_bytes((fsdd_clips / "1_jackson_11.wav").read_bytes()[: 44 + 1000])
    silence = tmp_path / "five_minutes_silence.wav"  # long, but within what is decoded in one piece
    write_silence(silence, 300)
    good = [fsdd_clips / "0_george_10.wav", data_cut, silence, fsdd_clips / "8_theo_13.wav", long_silence]
    files = [
        good[0],
        *(folder / name for name in list(broken)[:5]),
        good[1],
        good[2],
        *(folder / name for name in list(broken)[5:]),
        good[3],
        good[4],
    ]
    result = asr("transcribe", *files, "--model", model)
    assert result.returncode == 1
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [str(path) for path in good]
    assert result.stdout.splitlines()[-1] == f"{long_silence}\t"  # two hours of silence: no words
    errors = result.stderr.splitlines()
    assert len(errors) == len(broken), result.stderr
    for line, (name, message) in zip(errors, broken.items()):
        assert line.startswith(f"error: {folder / name}") and message in line, line

    as_json = asr("transcribe", folder / "nan.wav", good[0], "--model", model, "--format", "json")
    assert as_json.returncode == 1
    out = as_json.stdout.strip()  # one object per line, or one array of them
    rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines()]
    assert [row["file"] for row in rows] == [str(good[0])]
    assert as_json.stderr.startswith(f"error: {folder / 'nan.wav'}")


@pytest.mark.slow
def test_prepare_skips_broken_audio_and_transcript_lines(hostile, shared_data, tmp_path):
    """A yesno folder with broken files among real ones; an LJ Speech copy with bad metadata lines."""
    folder, broken = hostile
    yesno = tmp_path / "yesno"
    yesno.mkdir()
    real = sorted((shared_data / "yesno" / "waves_yesno").glob("*.wav"))[:5]
    for path in real:
        shutil.copy(path, yesno)
    broken_names = {}
    for n, name in enumerate(
        ["random.wav", "header_cut.wav", "zero_bytes.wav", "no_frames.wav", "rate_1hz.wav", "rate_10mhz.wav"]
    ):
        target = yesno / f"1_0_1_0_1_{n >> 2 & 1}_{n >> 1 & 1}_{n & 1}.wav"  # a yesno name: 1 = yes, 0 = no
        shutil.copy(folder / name, target)
        broken_names[target.name] = broken[name]
    result = asr("prepare", "yesno", "--src", yesno, "--out", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "data" / "train.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == sorted(path.stem for path in real)
    for name, message in broken_names.items():
        (line,) = [line for line in result.stderr.splitlines() if name in line]
        assert line.startswith("WARNING: skipped ") and message in line, line

    lj = tmp_path / "LJSpeech-1.1"
    (lj / "wavs").mkdir(parents=True)
    source = shared_data / "ljspeech" / "LJSpeech-1.1"
    metadata = [line for line in (source / "metadata.csv").read_bytes().splitlines() if line.startswith(b"LJ001-000")]
    for line in metadata:
        clip = line.split(b"|")[0].decode()
        shutil.copy(source / "wavs" / f"{clip}.wav", lj / "wavs")
    metadata[2] = metadata[2].replace(b"the", b"th\xe9")  # Latin-1, not UTF-8
    metadata[4] = b"LJ001-0005|only two fields"
    (lj / "metadata.csv").write_bytes(b"\n".join(metadata) + b"\n")
    result = asr("prepare", "ljspeech", "--src", tmp_path, "--out", tmp_path / "lj")
    assert result.returncode == 0, result.stderr
    assert f"skipped {lj / 'metadata.csv'}:3: not UTF-8 text" in result.stderr
    assert f"skipped {lj / 'metadata.csv'}:5: expected 'id|raw|normalized', got 2 fields" in result.stderr
    ids = [
        json.loads(line)["id"]
        for manifest in (tmp_path / "lj").glob("*.jsonl")
        for line in manifest.read_text().splitlines()
    ]
    assert sorted(ids) == [f"LJ001-000{n}" for n in (1, 2, 4, 6, 7, 8, 9)]


@pytest.mark.trains
def test_train_and_evaluate_skip_bad_lines_and_files_and_keep_the_rest(hostile, fsdd_clips, tmp_path):
    folder, broken = hostile
    good = [{"audio_filepath": str(fsdd_clips / f"{c}.wav"), "text": DIGITS[c[0]], "id": c} for c in GOOD_CLIPS]
    bad_lines = {  # line -> what its warning must say
        b'{"audio_filepath": "x.wav", "text": "one"': "invalid JSON",
        b'["a.wav", "one"]': "expected a JSON object, got list",
        json.dumps({"text": "one"}).encode(): "field 'audio_filepath' is missing or not a string",
        json.dumps({"audio_filepath": good[0]["audio_filepath"]}).encode(): "field 'text' is missing",
        json.dumps({**good[1], "id": "d1", "duration": "1.5"}).encode(): "'duration' must be a non-negative number",
        json.dumps({**good[1], "id": "d2", "text": 123}).encode(): "field 'text' is missing or not a string",
        json.dumps({**good[1], "id": "d3"}).encode()[:-1] + b', "duration": NaN}': "got nan",
        json.dumps({**good[1], "id": "d4", "speaker": {"name": "x"}}).encode(): "'speaker' must be a string",
        json.dumps({**good[2]}).encode(): "duplicate id '6_nicolas_12' (first on line 3)",
        b'{"audio_filepath": "' + good[3]["audio_filepath"].encode() + b'", "text": "ni\xf1o"}': "not UTF-8 text",
    }
    bad_items = {  # well-formed lines whose audio or text is unusable -> what the warning says
        json.dumps({**good[0], "id": "q1", "text": "?!"}): "has no usable characters",
        json.dumps(
            {"audio_filepath": str(folder / "two_hours_silence.flac"), "text": "no", "id": "s1"}
        ): "longer than a whole batch",
        json.dumps(
            {"audio_filepath": str(folder / "two_hours_silence.flac"), "text": "no", "id": "s2", "duration": 2.0}
        ): "120 minutes of audio",
    }
    for name in ("random.wav", "nan.wav", "rate_1hz.wav", "no_frames.wav"):
        bad_items[json.dumps({"audio_filepath": str(folder / name), "text": "yes no", "id": name, "duration": 1.0})] = (
            broken[name]
        )
    lines = [json.dumps(row).encode() for row in good[:3]] + list(bad_lines) + [json.dumps(good[3]).encode()]
    lines += [line.encode() for line in bad_items]
    manifest = tmp_path / "hostile.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps(row) + "\n" for row in good))
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[features]\nsample_rate = 8000\nn_mels = 40\n[model]\nnum_layers = 1\nhidden_size = 16\n"
        "[augment]\nfreq_masks = 0\ntime_masks = 0\ncrop_prob = 0.5\n[train]\nepochs = 2\nbatch_size = 4\nmax_batch_seconds = 20.0\n"
    )
    result = asr("train", "--config", config, "--train", manifest, "--dev", dev, "--exp", tmp_path / "exp")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "exp" / MODEL_FILENAME).is_file()
    for number, (_line, message) in enumerate(bad_lines.items(), start=4):
        assert any(f"{manifest}, line {number}: " in w and message in w for w in result.stderr.splitlines()), (
            number,
            message,
            result.stderr,
        )
    for line, message in bad_items.items():
        path = json.loads(line)["audio_filepath"]
        assert any(path in w and message in w for w in result.stderr.splitlines()), (message, result.stderr)
    log = (tmp_path / "exp" / "train.log").read_text()
    assert "training on 10 utterances" in log  # 4 good + 6 well-formed lines whose audio or text fail later

    report = asr("evaluate", "--model", tmp_path / "exp", "--manifest", manifest, "--out", tmp_path / "eval")
    assert report.returncode == 0, report.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["num_utterances"] == 4  # every good line scored
    unusable = {json.loads(line)["audio_filepath"] for line in bad_items}  # reasons are keyed by audio file
    assert set(summary["failed"]) == unusable and summary["num_failed"] == len(unusable)
    assert "two_hours_silence.flac: 120 minutes of audio" in summary["failed"][str(folder / "two_hours_silence.flac")]


@pytest.mark.slow
def test_files_of_noise_where_a_config_or_manifest_belongs(model, tmp_path):
    noise = np.random.default_rng(1).bytes(20000)
    (tmp_path / "noise.toml").write_bytes(noise)
    (tmp_path / "noise.jsonl").write_bytes(noise)
    (tmp_path / "ok.toml").write_text("[train]\nepochs = 1\n")
    result = asr(
        "train",
        "--config",
        tmp_path / "noise.toml",
        "--train",
        tmp_path / "noise.jsonl",
        "--dev",
        tmp_path / "noise.jsonl",
        "--exp",
        tmp_path / "exp",
    )
    assert result.returncode == 2 and result.stderr.startswith(f"error: {tmp_path / 'noise.toml'}: not UTF-8 text")
    result = asr(
        "train",
        "--config",
        tmp_path / "ok.toml",
        "--train",
        tmp_path / "noise.jsonl",
        "--dev",
        tmp_path / "noise.jsonl",
        "--exp",
        tmp_path / "exp",
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO: torch threads")]
    warnings, error = lines[:-1], lines[-1]
    assert len(warnings) == 11  # the training manifest: 10 lines named, then the count (dev is never read)
    assert all(f"{tmp_path / 'noise.jsonl'}, line " in w for w in warnings[:10])
    assert "invalid line(s) skipped in all" in warnings[10]
    assert error == f"error: {tmp_path / 'noise.jsonl'}: no usable utterances to train on"
    result = asr("evaluate", "--model", model, "--manifest", tmp_path / "noise.jsonl", "--out", tmp_path / "eval")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"error: {tmp_path / 'noise.jsonl'}: no usable utterances to evaluate"
