"""Sharded, streamed data on real FSDD clips: writing, WebDataset compatibility, the split across
processes and workers, shuffling, bucketing, resuming mid-epoch, damaged shards, training."""

import collections
import io
import json
import logging
import tarfile

import pytest
import soundfile
import torch
from torch.utils.data import DataLoader

from asr.data.dataset import Utterance, write_manifest
from asr.data.shards import ShardStream, expand_shard_spec, iterate_samples, shard_durations, write_shards
from asr.data.text import CharTokenizer
from asr.features.augment import AugmentConfig
from asr.features.logmel import FeatureConfig, LogMel
from asr.model.acoustic import ModelConfig
from asr.model.checkpoint import load_model, safe_load
from asr.train.batches import _as_is
from asr.train.config import ExperimentConfig, TrainConfig
from asr.train.loop import train
from asr.utils.errors import AsrError

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FEATURES = FeatureConfig(sample_rate=8000, n_mels=40)


def utterance(path) -> Utterance:
    info = soundfile.info(str(path))
    return Utterance(
        str(path), DIGITS[int(path.name[0])], info.frames / info.samplerate, path.stem.split("_")[1], path.stem
    )


@pytest.fixture(scope="module")
def corpus(fsdd_clips, tmp_path_factory):
    """40 real clips as a manifest and as 8 shards of 5."""
    folder = tmp_path_factory.mktemp("sharded")
    utts = [utterance(p) for p in sorted(fsdd_clips.glob("*_1[01].wav"))[:40]]
    write_manifest(folder / "train.jsonl", utts)
    index = write_shards(utts, folder / "shards", shard_size=5)
    return folder, utts, index


def test_shards_hold_every_utterance_and_an_index(corpus):
    folder, utts, index = corpus
    assert index["utterances"] == 40 and len(index["shards"]) == 8
    assert index["seconds"] == pytest.approx(sum(u.duration for u in utts), abs=0.01)
    on_disk = json.loads((folder / "shards" / "index.json").read_text())
    assert on_disk == index
    samples = [s for url in expand_shard_spec(str(folder / "shards")) for s in iterate_samples(url)]
    by_key = {s.key: s for s in samples}
    assert sorted(by_key) == sorted(u.id for u in utts)  # nothing lost, nothing twice
    for utt in utts:
        sample = by_key[utt.id]
        assert sample.audio == open(utt.audio_filepath, "rb").read()  # the audio file, byte for byte
        assert sample.text == utt.text and sample.duration == pytest.approx(utt.duration, abs=1e-4)
    # shuffled before sharding: the first shard is not simply the first five utterances
    first = [s.key for s in iterate_samples(str(folder / "shards" / "shard-000000.tar"))]
    assert first != [u.id for u in utts[:5]]
    assert expand_shard_spec(str(folder / "shards" / "shard-{000000..000007}.tar")) == expand_shard_spec(
        str(folder / "shards")
    )
    assert shard_durations(expand_shard_spec(str(folder / "shards"))) == [
        d for shard in index["shards"] for d in shard["durations"]
    ]


def test_webdataset_reads_our_shards_and_we_read_its(corpus, tmp_path):
    wds = pytest.importorskip("webdataset")
    folder, utts, _ = corpus
    theirs = list(wds.WebDataset(str(folder / "shards" / "shard-{000000..000007}.tar"), shardshuffle=False))
    assert sorted(s["__key__"] for s in theirs) == sorted(u.id for u in utts)
    assert all(json.loads(s["json"])["text"] in DIGITS and s["wav"][:4] == b"RIFF" for s in theirs)

    # A shard written by webdataset's own writer, FLAC audio and .txt transcripts, no durations, no index.
    with wds.TarWriter(str(tmp_path / "theirs-0.tar")) as sink:
        for utt in utts[:6]:
            samples, rate = soundfile.read(utt.audio_filepath)
            flac = io.BytesIO()
            soundfile.write(flac, samples, rate, format="FLAC")
            sink.write({"__key__": f"utt/{utt.id}", "flac": flac.getvalue(), "txt": utt.text})
    ours = list(iterate_samples(str(tmp_path / "theirs-0.tar")))
    assert [s.key for s in ours] == [f"utt/{u.id}" for u in utts[:6]]
    assert [s.text for s in ours] == [u.text for u in utts[:6]]
    assert [round(s.duration, 3) for s in ours] == [round(u.duration, 3) for u in utts[:6]]  # from the FLAC headers
    assert shard_durations([str(tmp_path / "theirs-0.tar")]) == [s.duration for s in ours]
    # the same shard by URL and through a pipe
    assert [s.key for s in iterate_samples((tmp_path / "theirs-0.tar").as_uri())] == [s.key for s in ours]
    assert [s.key for s in iterate_samples(f"pipe:cat {tmp_path / 'theirs-0.tar'}")] == [s.key for s in ours]


def stream(corpus, rank=0, world_size=1, augment=None, **options) -> ShardStream:
    folder, _, _ = corpus
    settings = {"batch_size": 4, "max_batch_seconds": 30.0, "shuffle_buffer": 8, "bucket_buffer": 12, "seed": 3}
    return ShardStream(
        expand_shard_spec(str(folder / "shards")),
        LogMel(FEATURES),
        CharTokenizer(),
        augment,
        rank=rank,
        world_size=world_size,
        **{**settings, **options},
    )


def identities(batches) -> collections.Counter:
    """(frames, transcript) of every utterance in the batches: what identifies a clip here."""
    tokenizer = CharTokenizer()
    found = collections.Counter()
    for batch in batches:
        for frames, target, length in zip(batch.feature_lengths, batch.targets, batch.target_lengths):
            found[(int(frames), tokenizer.decode(target[:length]))] += 1
    return found


def epoch_identities(shard_dir, rank, world_size, num_workers, epoch=1) -> collections.Counter:
    """What process ``rank`` of ``world_size`` trains on in ``epoch``, through a real DataLoader."""
    source = ShardStream(
        expand_shard_spec(str(shard_dir)),
        LogMel(FEATURES),
        CharTokenizer(),
        None,
        batch_size=3,
        max_batch_seconds=30.0,
        shuffle_buffer=4,
        bucket_buffer=6,
        seed=1,
        rank=rank,
        world_size=world_size,
    )
    source.set_epoch(epoch)
    pairs = list(DataLoader(source, batch_size=None, num_workers=num_workers, collate_fn=_as_is))
    assert {worker for worker, _ in pairs} == set(range(num_workers))  # every worker had a share
    return identities(batch for _, batch in pairs)


# 8 shards: 4 per process, 2 per worker; 2 shards: 1 per process, its worker split it by utterance;
# 1 shard: both processes read it, each keeps every other utterance, and so do its workers.
@pytest.mark.parametrize("shard_size", [5, 20, 40])
def test_processes_and_workers_share_an_epoch_without_duplicates(corpus, tmp_path, shard_size):
    folder, utts, _ = corpus
    write_shards(utts, tmp_path / "s", shard_size=shard_size)
    expected = identities(
        [batch for _, batch in stream(corpus, batch_size=40, bucket_buffer=40, max_batch_seconds=1e9)]
    )
    assert sum(expected.values()) == 40
    shares = [epoch_identities(tmp_path / "s", rank, 2, num_workers=2) for rank in range(2)]
    assert shares[0] + shares[1] == expected  # 2 processes x 2 workers: every clip exactly once
    assert abs(sum(shares[0].values()) - sum(shares[1].values())) <= 1


def test_shards_left_over_after_an_even_deal_rotate_between_epochs(corpus, tmp_path):
    """3 shards for 2 processes: each epoch one whole shard is left out, a different one."""
    folder, utts, _ = corpus
    for number in range(3):
        write_shards(utts[10 * number : 10 * number + 10], tmp_path / "s" / str(number), shard_size=10)
        (tmp_path / "s" / str(number) / "shard-000000.tar").rename(tmp_path / "s" / f"shard-00000{number}.tar")
    alone = [epoch_identities(tmp_path / "s" / f"shard-00000{n}.tar", 0, 1, num_workers=1) for n in range(3)]
    left_out = set()
    for epoch in (1, 2, 3, 4):
        shares = [epoch_identities(tmp_path / "s", rank, 2, num_workers=1, epoch=epoch) for rank in range(2)]
        (missing,) = [n for n in range(3) if shares[0] + shares[1] + alone[n] == sum(alone, collections.Counter())]
        kept = [alone[n] for n in range(3) if n != missing]
        assert shares == kept or shares == kept[::-1]  # one whole shard each
        left_out.add(missing)
    assert len(left_out) > 1


def test_epochs_are_shuffled_reproducibly_and_batches_bucketed(corpus):
    source = stream(corpus, max_batch_seconds=3.0)

    def epoch(number):
        source.set_epoch(number)
        return [batch for _, batch in source]

    first, again, second = epoch(1), epoch(1), epoch(2)
    assert all(torch.equal(a.features, b.features) for a, b in zip(first, again)) and len(first) == len(again)
    assert [b.feature_lengths.tolist() for b in first] != [b.feature_lengths.tolist() for b in second]
    assert identities(first) == identities(second)
    hop_seconds = FEATURES.hop_ms / 1000
    for batch in first:
        assert len(batch.indices) <= 4
        padded_seconds = batch.features.shape[1] * hop_seconds * len(batch.indices)
        assert padded_seconds <= 3.0 + 0.05 * len(batch.indices) or len(batch.indices) == 1


def test_a_resumed_epoch_skips_to_the_same_batches(corpus):
    """Skipping k batches (without decoding them) leaves exactly the batches an uninterrupted
    epoch goes on with, augmentation included."""
    augment = AugmentConfig(speed_factors=(0.9, 1.0, 1.1), noise_prob=0.5, gain_db=3.0)
    source = stream(corpus, augment=augment)
    source.set_epoch(4)
    full = [batch for _, batch in source]
    source.set_epoch(4, skip=[3])
    rest = [batch for _, batch in source]
    assert len(rest) == len(full) - 3
    for a, b in zip(full[3:], rest):
        assert torch.equal(a.features, b.features) and torch.equal(a.targets, b.targets)


def test_damaged_shards_lose_only_what_is_damaged(corpus, tmp_path, caplog):
    folder, _, _ = corpus
    data = (folder / "shards" / "shard-000000.tar").read_bytes()
    (tmp_path / "truncated.tar").write_bytes(data[: len(data) // 2])
    with tarfile.open(tmp_path / "partial.tar", "w") as tar:
        for name, payload in [("a.json", b'{"text": "one"}'), ("b.wav", data[:100]), ("b.txt", b"two")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with caplog.at_level(logging.WARNING):
        truncated = list(iterate_samples(str(tmp_path / "truncated.tar")))
        partial = list(iterate_samples(str(tmp_path / "partial.tar")))
    assert 0 < len(truncated) < 5  # the samples before the damage are kept
    assert "truncated.tar: unreadable after" in caplog.text
    assert partial == [] and "partial.tar:a: sample skipped (no audio member" in caplog.text
    assert "partial.tar:b: sample skipped" in caplog.text  # a 100-byte WAV has no readable header


def _hostile_shard(path, good_audio, member):
    """A shard with two good samples, then ``member`` (TarInfo fields), then a third good sample."""
    with tarfile.open(path, "w") as tar:
        for fields, payload in [
            ({"name": "good1.wav"}, good_audio),
            ({"name": "good1.txt"}, b"one"),
            ({"name": "good2.wav"}, good_audio),
            ({"name": "good2.txt"}, b"two"),
            (member, b"evil" if "type" not in member else None),
            ({"name": "good3.wav"}, good_audio),
            ({"name": "good3.txt"}, b"three"),
        ]:
            fields = dict(fields)
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


@pytest.mark.parametrize(
    "member,problem",
    [
        ({"name": "evil.wav", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, "is a symbolic link"),
        ({"name": "evil.wav", "type": tarfile.LNKTYPE, "linkname": "good1.wav"}, "is a hard link"),
        ({"name": "evil.wav", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, "is a device file"),
        ({"name": "evil.wav", "type": tarfile.FIFOTYPE}, "is a named pipe"),
        ({"name": "../evil.wav"}, "has a '..' component"),
        ({"name": "utt/../../evil.txt"}, "has a '..' component"),
        ({"name": "/etc/evil.wav"}, "has an absolute path"),
    ],
)
def test_unsafe_shard_members_are_refused_naming_shard_and_member(fsdd_clips, tmp_path, member, problem):
    audio = (fsdd_clips / "0_george_10.wav").read_bytes()
    shard = str(_hostile_shard(tmp_path / "hostile.tar", audio, member))
    read = []
    with pytest.raises(AsrError) as caught:
        for sample in iterate_samples(shard):
            read.append(sample.key)
    assert str(caught.value).startswith(f"{shard}: member {member['name']!r} {problem}")
    assert read == ["good1"]  # samples completed before it are kept; nothing from it on is used
    with pytest.raises(AsrError, match="hostile.tar: member"):
        shard_durations([shard])  # an unindexed shard is scanned before training: refused up front
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.tar"]


def test_shards_are_read_in_memory_never_extracted(corpus, tmp_path, monkeypatch):
    folder, _, _ = corpus

    def refuse(*args, **kwargs):
        raise AssertionError("a shard member was extracted to disk")

    for method in ("extract", "extractall", "_extract_member", "makefile", "makelink"):
        monkeypatch.setattr(tarfile.TarFile, method, refuse)
    monkeypatch.chdir(tmp_path)
    # a folder entry, as `tar cf shard.tar folder/` writes one, is passed over, not refused
    with tarfile.open(tmp_path / "with-folder.tar", "w") as tar:
        tar.addfile(_folder("utt"))
        with tarfile.open(folder / "shards" / "shard-000000.tar") as source:
            for info in source:
                info.name = f"utt/{info.name}"
                tar.addfile(info, source.extractfile(info))
    samples = [s for url in expand_shard_spec(str(folder / "shards")) for s in iterate_samples(url)]
    assert len(samples) == 40
    assert len(list(iterate_samples(str(tmp_path / "with-folder.tar")))) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["with-folder.tar"]


def _folder(name):
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def test_unreadable_audio_and_duplicate_ids_when_sharding(fsdd_clips, tmp_path, caplog):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    utts = [utterance(fsdd_clips / "0_george_10.wav"), utterance(fsdd_clips / "1_george_10.wav")]
    twin = Utterance(utts[0].audio_filepath, "zero", utts[0].duration, "george", "0_george_10")
    utts += [twin, Utterance(str(broken), "two", 1.0, None, "broken.v1")]
    with caplog.at_level(logging.WARNING):
        index = write_shards(utts, tmp_path / "s", shard_size=10, shuffle_seed=None)
    assert index["utterances"] == 3 and index["skipped"] == [str(broken)]
    assert "broken.wav: cannot read audio header" in caplog.text
    keys = [s.key for s in iterate_samples(str(tmp_path / "s" / "shard-000000.tar"))]
    assert keys == ["0_george_10", "1_george_10", "0_george_10_2"]


def tiny_config(epochs, **train) -> ExperimentConfig:
    return ExperimentConfig(
        features=FEATURES,
        augment=AugmentConfig(freq_masks=0, time_masks=0),
        model=ModelConfig(frontend="stack", subsampling=2, num_layers=1, hidden_size=48, dropout=0.0),
        train=TrainConfig(
            epochs=epochs,
            batch_size=4,
            learning_rate=5e-3,
            warmup_steps=4,
            seed=2,
            shuffle_buffer=8,
            bucket_buffer=16,
            **train,
        ),
    )


@pytest.mark.trains
def test_training_streams_shards_and_resumes_mid_epoch(corpus, tmp_path, monkeypatch):
    """Train from a shard pattern with two DataLoader workers; a run stopped right after a mid-epoch
    checkpoint (in the middle of the workers' round) resumes, skipping each worker's consumed
    batches without decoding them, to the uninterrupted run's weights."""
    import asr.train.loop

    folder, _, _ = corpus
    shards = str(folder / "shards" / "shard-{000000..000007}.tar")
    dev = folder / "train.jsonl"
    config = tiny_config(epochs=3, num_workers=2, checkpoint_every_steps=1)
    result = train(config, shards, dev, tmp_path / "straight")
    history = json.loads((tmp_path / "straight" / "history.json").read_text())
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"]
    assert result.epochs_run == 3 and load_model(tmp_path / "straight").metadata["train_manifest"] == shards

    real_save = asr.train.loop.save_state

    def save_then_crash(state, exp_dir):
        real_save(state, exp_dir)
        if state["epoch"] == 2 and not state["epoch_done"] and state["position"][0]["next_worker"] == 1:
            raise KeyboardInterrupt  # stands in for a crash right after the checkpoint

    monkeypatch.setattr(asr.train.loop, "save_state", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(config, shards, dev, tmp_path / "resumed")
    monkeypatch.setattr(asr.train.loop, "save_state", real_save)
    interrupted = safe_load(tmp_path / "resumed" / "last.pt")
    (position,) = interrupted["position"]  # one process, two workers, the second one's turn
    assert interrupted["epoch"] == 2 and position["consumed"][0] == position["consumed"][1] + 1
    train(config, shards, dev, tmp_path / "resumed", resume=True)
    a, b = safe_load(tmp_path / "straight" / "last.pt"), safe_load(tmp_path / "resumed" / "last.pt")
    assert a["step"] == b["step"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_shard_command_and_what_train_takes_for_shards(corpus, tmp_path, capsys):
    from asr.cli.main import main
    from asr.data.shards import is_shard_spec

    folder, _, _ = corpus
    assert main(["shard", str(folder / "train.jsonl"), "--out", str(tmp_path / "s"), "--shard-size", "16"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 's'}: 3 shard(s), 40 utterances")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "index.json",
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-000002.tar",
    ]
    assert [
        is_shard_spec(spec)
        for spec in (
            str(tmp_path / "s"),
            str(tmp_path / "s" / "shard-{000000..000002}.tar"),
            "https://host/shard-000000.tar",
            "pipe:curl -s https://host/a.tar",
            str(folder / "train.jsonl"),
        )
    ] == [True, True, True, True, False]
    assert main(["shard", str(folder / "train.jsonl"), "--out", str(tmp_path / "t"), "--shard-size", "0"]) == 2
    assert "shard size must be positive" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(AsrError, match="empty: no .tar shards in this folder"):
        expand_shard_spec(str(tmp_path / "empty"))
    with pytest.raises(AsrError, match=r"shard-000003.tar: no such shard"):  # the first one missing
        expand_shard_spec(str(tmp_path / "s" / "shard-{000000..000009}.tar"))
