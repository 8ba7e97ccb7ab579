import json
import logging

import pytest

from asr.data.corpora import prepare_corpus
from asr.data.dataset import read_manifest
from asr.utils.errors import AsrError


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_yesno_split_like_kaldi(shared_data, tmp_path):
    counts = prepare_corpus("yesno", shared_data / "yesno", tmp_path)
    assert counts == {"train": 31, "test": 29}
    test = read_manifest(tmp_path / "test.jsonl")
    assert sum(len(u.text.split()) for u in test) == 232
    first = lines(tmp_path / "train.jsonl")[0]
    assert first["id"] == "0_0_0_0_1_1_1_1" and first["text"] == "no no no no yes yes yes yes"


def test_fsdd_official_split(fsdd_clips, tmp_path):
    counts = prepare_corpus("fsdd", fsdd_clips.parent, tmp_path)
    # the demo holds indices 0-1, 5 and 10-19 of 5 speakers x 10 digits
    assert counts == {"train": 500, "dev": 50, "test": 100}
    test = lines(tmp_path / "test.jsonl")
    assert all(int(row["id"].split("_")[2]) <= 4 for row in test)
    assert {row["text"] for row in test} == {
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    }


def test_fsdd_leave_one_speaker_out(fsdd_clips, tmp_path):
    prepare_corpus("fsdd", fsdd_clips.parent, tmp_path, holdout_speaker="theo")
    assert {row["speaker"] for row in lines(tmp_path / "test.jsonl")} == {"theo"}
    for split in ("train", "dev"):
        assert "theo" not in {row["speaker"] for row in lines(tmp_path / f"{split}.jsonl")}
    with pytest.raises(AsrError, match="no speaker 'nobody'"):
        prepare_corpus("fsdd", fsdd_clips.parent, tmp_path, holdout_speaker="nobody")


def test_an4_skips_and_counts_missing_audio(shared_data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        counts = prepare_corpus("an4", shared_data / "an4", tmp_path)
    assert counts["train"] + counts["dev"] + counts["test"] == 66
    # the 120 listed test utterances have no audio here: unseen training speakers stand in for them
    assert "testing on the 9 training speakers" in caplog.text
    assert "an4 train: 882 transcribed utterance(s) have no audio" in caplog.text
    assert "an4 test: 120 transcribed utterance(s) have no audio" in caplog.text
    train_speakers = {row["speaker"] for row in lines(tmp_path / "train.jsonl")}
    dev_speakers = {row["speaker"] for row in lines(tmp_path / "dev.jsonl")}
    test_speakers = {row["speaker"] for row in lines(tmp_path / "test.jsonl")}
    assert dev_speakers and test_speakers and not train_speakers & dev_speakers
    assert not (train_speakers | dev_speakers) & test_speakers
    assert "<s>" not in (tmp_path / "train.jsonl").read_text()


def test_ljspeech_holds_out_contiguous_passages(shared_data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        counts = prepare_corpus("ljspeech", shared_data / "ljspeech", tmp_path)
    assert sum(counts.values()) == 385
    assert "12710 transcribed utterance(s) have no audio" in caplog.text
    train_ids = {row["id"] for row in lines(tmp_path / "train.jsonl")}
    dev_ids = [row["id"] for row in lines(tmp_path / "dev.jsonl")]
    test_ids = [row["id"] for row in lines(tmp_path / "test.jsonl")]
    assert not train_ids & set(dev_ids + test_ids)
    # two chapters have audio here: LJ001 trains, LJ002 is cut into a dev half and a test half
    assert all(i.startswith("LJ001") for i in train_ids)
    assert all(i.startswith("LJ002") for i in dev_ids + test_ids)
    assert max(dev_ids) < min(test_ids)
    # the LM text: every metadata sentence (13,095) but the 199 dev and test ones, train sentences included
    lm_text = (tmp_path / "lm_text.txt").read_text(encoding="utf-8").splitlines()
    assert len(lm_text) == 13095 - len(dev_ids) - len(test_ids)
    held_out = {row["text"] for name in ("dev", "test") for row in lines(tmp_path / f"{name}.jsonl")}
    trained = {row["text"] for row in lines(tmp_path / "train.jsonl")}
    assert not held_out & set(lm_text) - trained and trained <= set(lm_text)


def test_unknown_corpus_and_missing_folder(tmp_path):
    with pytest.raises(AsrError, match="unknown corpus"):
        prepare_corpus("timit", tmp_path, tmp_path)
    with pytest.raises(AsrError, match="does not exist"):
        prepare_corpus("yesno", tmp_path / "nowhere", tmp_path)


def test_vctk_one_speaker_copy_is_all_test(shared_data, tmp_path, capsys):
    from asr.cli.main import main

    assert main(["prepare", "vctk", "--src", str(shared_data / "vctk"), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{tmp_path / 'test.jsonl'}: 503 utterances"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.jsonl"]  # no train, no dev
    test = read_manifest(tmp_path / "test.jsonl")
    assert len(test) == 503 and {u.speaker for u in test} == {"p239"}
    assert test[0].id == "p239_001" and test[0].text == "Please call Stella."
    assert all(1.0 < u.duration < 15.0 for u in test)  # read from each file (16 kHz here, in "wav48/")


def test_vctk_holds_out_whole_speakers(shared_data, tmp_path):
    from asr.data.corpora.vctk import MIN_SPEAKERS_TO_TRAIN, split_speakers

    speakers = [f"p{225 + 7 * i}" for i in range(30)]
    groups = split_speakers(list(reversed(speakers)))
    assert groups == split_speakers(speakers)  # by name, not by the order given
    assert [len(groups[s]) for s in ("train", "dev", "test")] == [24, 3, 3]
    assert (
        not groups["train"] & groups["dev"]
        and not groups["train"] & groups["test"]
        and not groups["dev"] & groups["test"]
    )
    assert groups["train"] | groups["dev"] | groups["test"] == set(speakers)
    assert split_speakers(speakers[: MIN_SPEAKERS_TO_TRAIN - 1])["test"] == set(speakers[: MIN_SPEAKERS_TO_TRAIN - 1])

    # a corpus folder of 30 speakers (two real p239 clips each, copied): every clip lands with its speaker
    import shutil

    real = shared_data / "vctk" / "VCTK-Corpus"
    for speaker in speakers:
        for folder, suffix in (("wav48", "wav"), ("txt", "txt")):
            (tmp_path / "src" / folder / speaker).mkdir(parents=True)
            for number in ("001", "002"):
                shutil.copy(
                    real / folder / "p239" / f"p239_{number}.{suffix}",
                    tmp_path / "src" / folder / speaker / f"{speaker}_{number}.{suffix}",
                )
    counts = prepare_corpus("vctk", tmp_path / "src", tmp_path / "out")
    assert counts == {"train": 48, "dev": 6, "test": 6}
    for split, names in groups.items():
        rows = lines(tmp_path / "out" / f"{split}.jsonl")
        assert {row["speaker"] for row in rows} == names and all(row["id"].startswith(row["speaker"]) for row in rows)
