import json
import logging
import shutil

import pytest
import soundfile

from asr.data.dataset import BucketBatchSampler, Utterance, read_manifest, write_manifest
from asr.utils.errors import ManifestError


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path, fsdd_clips):
    (tmp_path / "audio").mkdir()
    shutil.copy(fsdd_clips / "0_george_10.wav", tmp_path / "audio" / "a.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "audio/a.wav", "text": "zero", "speaker": "george"}) + "\n")
    (utt,) = read_manifest(manifest)
    assert utt.audio_filepath == str(tmp_path / "audio" / "a.wav")
    info = soundfile.info(str(fsdd_clips / "0_george_10.wav"))
    assert utt.duration == pytest.approx(info.frames / info.samplerate)  # read from the header when absent
    assert utt.speaker == "george" and utt.key == "a"


def test_nemo_manifest_round_trip(tmp_path, fsdd_clips):
    utts = [Utterance(str(fsdd_clips / "1_jackson_10.wav"), "one", 0.5, "jackson", "u1")]
    write_manifest(tmp_path / "m.jsonl", utts)
    assert read_manifest(tmp_path / "m.jsonl") == utts


@pytest.mark.parametrize(
    "line,message",
    [
        ('{"audio_filepath": "a.wav", "text": "x"', "line 2: invalid JSON"),
        ('["a.wav", "x"]', "line 2: expected a JSON object"),
        ('{"audio_filepath": "a.wav"}', "line 2: field 'text' is missing"),
        ('{"audio_filepath": 3, "text": "x"}', "line 2: field 'audio_filepath'"),
    ],
)
def test_bad_lines_name_the_line(tmp_path, fsdd_clips, line, message):
    good = json.dumps({"audio_filepath": str(fsdd_clips / "0_george_10.wav"), "text": "zero", "duration": 0.4})
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(good + "\n" + line + "\n")
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(manifest)
    assert str(manifest) in str(info.value)


def test_missing_audio_is_an_error_or_skipped_and_counted(tmp_path, fsdd_clips, caplog):
    rows = [
        {"audio_filepath": str(fsdd_clips / "0_george_10.wav"), "text": "zero", "duration": 0.4},
        {"audio_filepath": str(tmp_path / "gone.wav"), "text": "one", "duration": 0.4},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ManifestError, match=r"m.jsonl, line 2: audio file .*gone.wav does not exist"):
        read_manifest(manifest)
    with caplog.at_level(logging.WARNING):
        utts = read_manifest(manifest, skip_missing=True)
    assert [u.text for u in utts] == ["zero"]
    assert "skipped 1 line(s)" in caplog.text and "gone.wav" in caplog.text


def test_bucket_sampler_covers_every_utterance_once_and_bounds_padding():
    durations = [0.3 + (i * 7919 % 100) / 20 for i in range(200)]
    sampler = BucketBatchSampler(durations, batch_size=16, max_batch_seconds=30.0, shuffle=True, seed=3)
    sampler.set_epoch(1)
    batches = list(sampler)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(200))
    for batch in batches:
        assert len(batch) <= 16
        assert max(durations[i] for i in batch) * len(batch) <= 30.0 or len(batch) == 1
    sampler.set_epoch(2)
    assert list(sampler) != batches  # a new order each epoch
    sampler.set_epoch(1)
    assert list(sampler) == batches  # and the same order for the same epoch


@pytest.mark.parametrize(
    "line,message",
    [
        (b'{"audio_filepath": "a.wav", "text": "caf\xe9"}', r"line 2: not UTF-8 text \(byte 0xe9 at column 41\)"),
        (
            b'{"audio_filepath": "a.wav", "text": "x", "duration": NaN}',
            "line 2: 'duration' must be a non-negative number of seconds, got nan",
        ),
        (b'{"audio_filepath": "a.wav", "text": "x", "offset": -1}', "line 2: 'offset' must be a non-negative number"),
        (b'{"audio_filepath": "a.wav", "text": "x", "id": ["u1"]}', "line 2: 'id' must be a string"),
        (b'{"audio_filepath": "a.wav", "text": "x", "id": "u1"}', r"line 2: duplicate id 'u1' \(first on line 1\)"),
    ],
)
def test_strict_reading_names_bad_values_and_duplicates(tmp_path, fsdd_clips, line, message):
    shutil.copy(fsdd_clips / "0_george_10.wav", tmp_path / "a.wav")
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b'{"audio_filepath": "a.wav", "text": "zero", "id": "u1"}\n' + line + b"\n")
    with pytest.raises(ManifestError, match=message):
        read_manifest(manifest)
    assert [u.id for u in read_manifest(manifest, skip_missing=True)] == ["u1"]  # lenient: the good line stays


def test_offset_makes_a_segment(tmp_path, fsdd_clips):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"audio_filepath": str(fsdd_clips / "0_george_10.wav"), "text": "zero", "offset": 0.1}) + "\n"
    )
    (utt,) = read_manifest(manifest)
    info = soundfile.info(str(fsdd_clips / "0_george_10.wav"))
    assert utt.offset == 0.1 and utt.duration == pytest.approx(info.duration - 0.1)
    assert utt.load(8000).shape[0] == round(utt.duration * 8000)
    assert json.loads(json.dumps(utt.to_json()))["offset"] == 0.1
