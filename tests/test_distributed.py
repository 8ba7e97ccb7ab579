"""Data-parallel training: shares of global batches, and 2 gloo processes against 1 on real yesno clips."""

import json
import subprocess
import sys

import pytest
import torch

from asr.data.dataset import DistributedBucketBatchSampler, write_manifest
from asr.model.checkpoint import safe_load

pytestmark = pytest.mark.trains  # every test here trains a model

CONFIG = """
[features]
sample_rate = 8000
n_mels = 40
[augment]
freq_masks = 0
time_masks = 0
[model]
frontend = "stack"
subsampling = 4
num_layers = 1
hidden_size = 32
dropout = 0.0
[train]
epochs = 2
batch_size = 3
max_batch_seconds = 60.0
learning_rate = 3e-3
warmup_steps = 2
seed = 3
"""


@pytest.mark.parametrize("replicas", [2, 3])
def test_every_global_batch_is_split_into_disjoint_shares(replicas):
    durations = [0.5 + (i * 37 % 23) / 10 for i in range(50)]
    samplers = [
        DistributedBucketBatchSampler(durations, 4, 30.0, shuffle=True, seed=5, rank=r, num_replicas=replicas)
        for r in range(replicas)
    ]
    single = DistributedBucketBatchSampler(durations, 4, 30.0, shuffle=True, seed=5)
    for sampler in [*samplers, single]:
        sampler.set_epoch(2)
    shares = [list(s) for s in samplers]
    assert len({len(s) for s in shares}) == 1  # every process takes the same number of steps
    for step, batch in enumerate(single):
        parts = [shares[r][step] for r in range(replicas)]
        assert sorted(i for part in parts for i in part) == sorted(batch)
        assert sum(len(part) for part in parts) == len(batch)
    # a resumed epoch starts at a later global batch
    samplers[1].start = 3
    assert list(samplers[1]) == shares[1][3:]


def _train(tmp_path, name, processes):
    launcher = [sys.executable, "-m", "asr"]
    if processes > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(processes),
            "-m",
            "asr",
        ]
    result = subprocess.run(
        [
            *launcher,
            "train",
            "--config",
            tmp_path / "conf.toml",
            "--train",
            tmp_path / "train.jsonl",
            "--dev",
            tmp_path / "dev.jsonl",
            "--exp",
            tmp_path / name,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_gloo_processes_end_with_the_weights_of_one(shared_data, tmp_path):
    """Ten real clips in global batches of 3 (shares of 2 and 1, and a last batch of one
    utterance where the second process idles): the gradient of each step is the global
    batch's, so the weights agree up to float32 summation order.

    Tolerance: summing a batch's gradient in one backward pass or as two halves added by
    the all-reduce differs by ~1e-6 relative (float32 rounding); Adam divides by the
    running gradient magnitude, which magnifies such differences where a gradient is
    near zero. Measured on this data: the largest weight difference after 8 steps is
    1.0e-5 (the largest weights are ~0.2), hence atol 1e-4; averaging each process' own
    mean loss instead (shares of 2 and 1 weigh utterances unequally) left 2.3e-2.
    """
    from asr.data.corpora.yesno import prepare

    splits = prepare(shared_data / "yesno")
    write_manifest(tmp_path / "train.jsonl", splits["train"][:10])
    write_manifest(tmp_path / "dev.jsonl", splits["test"][:3])
    (tmp_path / "conf.toml").write_text(CONFIG)
    _train(tmp_path, "one", 1)
    two = _train(tmp_path, "two", 2)
    assert "2 process(es)" in (tmp_path / "two" / "train.log").read_text()
    assert two.stdout.count("model.pt: best epoch") == 1  # only the first process reports

    one_state, two_state = safe_load(tmp_path / "one" / "last.pt"), safe_load(tmp_path / "two" / "last.pt")
    assert one_state["step"] == two_state["step"] == 8  # 4 global batches per epoch, none skipped
    assert len(two_state["random"]) == 2  # each process' generators are kept for --resume
    for key, value in one_state["model"].items():
        assert torch.allclose(value, two_state["model"][key], rtol=0, atol=1e-4), key
    one_history = json.loads((tmp_path / "one" / "history.json").read_text())
    two_history = json.loads((tmp_path / "two" / "history.json").read_text())
    for a, b in zip(one_history, two_history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["dev_loss"] == pytest.approx(b["dev_loss"], rel=1e-5)
    # only the first process wrote files: one log, one set of tensorboard events
    assert len(list((tmp_path / "two" / "tensorboard").iterdir())) == 1


@pytest.mark.slow
def test_two_processes_stream_uneven_shards(fsdd_clips, tmp_path):
    """Shards of 12, 12 and 5 clips for 2 processes with a DataLoader worker each: each epoch two
    shards are used, one per process; when the process holding the 5-clip shard runs out, the
    epoch ends for both (they agree every step) and training goes on in step."""
    import soundfile

    from asr.data.dataset import Utterance
    from asr.data.shards import ShardStream, expand_shard_spec, write_shards

    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    paths = sorted(fsdd_clips.glob("*_14.wav"))[:29]
    utts = [Utterance(str(p), digits[int(p.name[0])], soundfile.info(str(p)).duration, None, p.stem) for p in paths]
    write_shards(utts, tmp_path / "shards", shard_size=12)
    write_manifest(tmp_path / "dev.jsonl", utts[:4])
    (tmp_path / "conf.toml").write_text(CONFIG.replace("epochs = 2", "epochs = 3") + "num_workers = 1\n")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "asr"]
    result = subprocess.run(
        [
            *launcher,
            "-v",
            "train",
            "--config",
            tmp_path / "conf.toml",
            "--train",
            tmp_path / "shards",
            "--dev",
            tmp_path / "dev.jsonl",
            "--exp",
            tmp_path / "exp",
            "--seed",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("3 shards for 2 processes: 1 shard(s)") == 1  # said once, by the first process
    history = json.loads((tmp_path / "exp" / "history.json").read_text())
    assert len(history) == 3 and all(r["train_loss"] == r["train_loss"] for r in history)  # finite, not NaN
    steps = [
        int(line.split("step ")[1].split(",")[0])
        for line in result.stderr.splitlines()
        if "training state saved" in line
    ]
    per_epoch = [b - a for a, b in zip([0, *steps], steps)]
    # Per process, batches of at most 2 clips (a global batch of 3): a 12-clip shard gives 6, the
    # 5-clip one 3, and an epoch lasts as long as the shorter share.
    source = ShardStream(expand_shard_spec(str(tmp_path / "shards")), None, None, None, 2, 30.0, seed=2)
    expected = []
    for epoch in (1, 2, 3):
        source.set_epoch(epoch)
        expected.append(3 if str(tmp_path / "shards" / "shard-000002.tar") in source.shard_order()[:2] else 6)
    assert per_epoch == expected and 3 in expected and 6 in expected


def _step_protocol_worker(rank, port, out_dir):
    """Process ``rank`` of 2 runs three steps with hand-made shares (see the test)."""
    import os

    from asr.data.dataset import Batch
    from asr.features.logmel import FeatureConfig
    from asr.model.acoustic import AcousticModel, ModelConfig
    from asr.train.distributed import DistributedContext, start, stop
    from asr.train.step import TrainStep

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    context = DistributedContext(rank=rank, world_size=2)
    start(context, "cpu")
    torch.manual_seed(0)
    network = AcousticModel(
        5, FeatureConfig(n_mels=8), ModelConfig(num_layers=1, hidden_size=8, subsampling=2, dropout=0)
    )
    model = torch.nn.parallel.DistributedDataParallel(network, broadcast_buffers=False)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    step = TrainStep(model, network, optimizer, scheduler, 0, 5.0, "fp32", "cpu", context)

    def batch(poison=False):
        features = torch.randn(2, 20, 8, generator=torch.Generator().manual_seed(rank))
        if poison:
            features[0, 3, 1] = float("nan")
        return Batch(features, torch.tensor([20, 15]), torch.tensor([[1, 2], [3, 0]]), torch.tensor([2, 1]), [0, 1])

    before = [p.detach().clone() for p in network.parameters()]
    outcomes = [step(batch(poison=rank == 1)).status]  # NaN on process 1 only
    unchanged = all(torch.equal(a, b) for a, b in zip(before, network.parameters()))
    outcomes.append(step(batch() if rank == 0 else None).status)  # process 1 has no share
    changed = not all(torch.equal(a, b) for a, b in zip(before, network.parameters()))
    outcomes.append(step(batch() if rank == 1 else None).status)  # process 0 has none (DDP rebuilds buckets)
    outcomes.append(step(batch() if rank == 1 else None, exhausted=rank == 0).status)  # process 0 ran out
    weights = torch.cat([p.detach().flatten() for p in network.parameters()])
    del step, model  # the DDP wrapper must not outlive the process group (see asr.train.distributed.stop)
    stop(context)
    torch.save(
        {"outcomes": outcomes, "unchanged": unchanged, "changed": changed, "weights": weights},
        f"{out_dir}/rank{rank}.pt",
    )


@pytest.mark.timeout(120)  # a disagreement between the processes deadlocks them
def test_processes_agree_on_skips_idle_shares_and_the_end_of_an_epoch(tmp_path):
    """Two gloo processes: a NaN loss on one skips the step on both; a process without a share
    joins the step with a zero-weight pass; one process out of batches ends the epoch for both."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.start_processes(
        _step_protocol_worker, args=(port, str(tmp_path)), nprocs=2, start_method="spawn"
    )  # fork after OpenMP threads started can hang
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    for result in results:
        assert result["outcomes"] == ["nonfinite_loss", "trained", "trained", "done"]
        assert result["unchanged"] and result["changed"]
    assert torch.equal(results[0]["weights"], results[1]["weights"])  # still in step
