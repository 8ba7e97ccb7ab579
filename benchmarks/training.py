"""Training throughput of the fsdd config, in audio seconds per second, three ways, against the matmul limit.

    python benchmarks/training.py [--config recipes/fsdd/conf.toml] [--steps 12] [--repeats 3]
        [--threads N] [--batch-size N] [--max-batch-seconds S] [--set section.key=value ...]
        [--variants asr,packed,padded] [--optimizer default|foreach|fused] [--compile] [--no-mkldnn]

Runs the same training steps (same length-bucketed batches, augmentation off) with
asr's ``RecurrentStack`` on padded batches (exact: no utterance reads padding), with
one ``torch.nn`` RNN around ``pack_padded_sequence`` (exact) and with that RNN on the
padded batch (inexact: the backward direction reads the padding), and prints the ratios.
Each variant runs ``--steps`` steps ``--repeats`` times, the rounds interleaved with the
other variants'; a step's time is its best over the rounds (the machine is shared, and
the first round also pays for oneDNN primitives created per new sequence length and, with
``--compile``, for compiling).

Then it puts each variant against the physical limit:

* **FLOPs per step**, counted from each batch's padded shapes (``B`` utterances, ``T'``
  frames after the front end, the same count for all three variants). Counting rule:
  a GEMM ``(M, K) x (K, N)`` is ``2*M*K*N`` FLOPs. Each recurrent layer and direction
  (gates ``G*H``: 4H for an LSTM, 3H GRU, H RNN) has forward ``2*B*T'*I*G*H`` for the
  input projection and ``2*B*T'*H*G*H`` for the recurrence; the output projection
  ``2*B*T'*(D*H)*V``; a convolution of the front end ``2*B*T'*F'*C_out*C_in*k*k`` (its
  im2col GEMM). Backward is twice the forward (the input gradient and the weight
  gradient, each one GEMM of the forward's size), except that no input gradient is
  counted where the input needs none (the first convolution; the first recurrent layer
  behind a front end without weights; the zero initial state: ``T'-1`` recurrent input
  gradients). Elementwise work (gate nonlinearities, biases, normalisation, dropout,
  log-softmax, CTC, the optimiser) counts zero. This is exactly what
  ``torch.utils.flop_counter`` counts for the model with ``torch.backends.mkldnn`` off
  (it cannot see inside oneDNN's RNN kernel).
* **The matmul limit**: this CPU running the model's own GEMMs, and nothing else, with
  ``torch.mm``/``torch.addmm`` at the same ``(M, K, N)`` and the same thread count: per
  layer and direction the input projection ``(B*T', I) x (I, 4H)``, ``T'`` recurrent
  GEMMs ``(B, H) x (H, 4H)`` one after another, and the backward ones (``(B*T', 4H) x
  (4H, I)`` and ``(I, B*T') x (B*T', 4H)``; ``T'-1`` times ``(B, 4H) x (4H, H)``, and the
  recurrent weight gradient as one ``(H, B*T') x (B*T', 4H)``), plus the output
  projection's and the convolutions' (as im2col) forward and backward GEMMs. They are
  replayed for the same batches, in the same rounds, best of the rounds per batch. The
  limit's FLOP rate is the counted FLOPs over that time.
* **Achieved**: the counted FLOPs over the measured step time, and its percentage of the
  matmul limit (= GEMM replay time / step time). What is missing to 100 % is everything a
  step does besides those GEMMs at those shapes: the gate arithmetic, the reversal
  gathers, the front end's and CTC's elementwise work, the optimiser, Python, and any
  inefficiency of the RNN kernel's own GEMMs relative to ``torch.mm``.

Every time is taken twice: wall clock (``time.perf_counter``) and the CPU time charged to
this process (``time.process_time``, all its threads). On a machine shared with other
jobs, wall time counts the waits for a core; with one thread, CPU time does not, which
makes it the steadier measure there ("per CPU-second", "% (CPU)"). With more threads
CPU time also counts threads spinning at OpenMP barriers.

Levers, each a flag, so that they are measured by the same script: ``--threads``,
``--batch-size``/``--max-batch-seconds`` (bigger GEMMs, above all the recurrent
``(B, H) x (H, 4H)``), ``--optimizer`` (AdamW one tensor at a time, torch's choice on CPU,
or ``foreach``/``fused``), ``--compile`` (``torch.compile`` of the recurrent stack and the
output layer; ``torch.nn`` RNN modules stay eager kernels inside it), ``--no-mkldnn``
(ATen's own RNN kernels instead of oneDNN's fused per-layer RNN, which ``torch.nn.LSTM``
uses for float32 on CPU), and the ``padded`` variant (one multi-layer ``torch.nn`` RNN
call: the fused alternative, inexact). On a machine with more runnable threads than
cores, ``OMP_WAIT_POLICY=PASSIVE`` in the environment (read when torch loads) keeps
several torch threads from spinning at every small GEMM's barrier.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from asr.data.corpora import prepare_corpus
from asr.data.dataset import BucketBatchSampler, SpeechDataset, collate, read_manifest
from asr.data.text import CharTokenizer
from asr.features.logmel import LogMel
from asr.model.acoustic import AcousticModel, ConvFrontEnd
from asr.model.recurrent import CELLS
from asr.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "asr": "asr RecurrentStack, padded buckets, exact: ",
    "packed": "torch.nn RNN + pack_padded_sequence, exact:",
    "padded": "torch.nn RNN on padding, inexact:          ",
}


class TorchRNN(torch.nn.Module):
    """The same recurrent stack as one ``torch.nn.LSTM``/``GRU``/``RNN``, run padded or packed."""

    def __init__(self, config, input_size: int, packed: bool):
        super().__init__()
        self.packed = packed
        self.rnn = CELLS[config.cell](
            input_size,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            dropout=config.dropout,
        )

    def forward(self, x, lengths):
        if not self.packed:
            return self.rnn(x)[0]  # the backward direction reads the padding: inexact
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        return torch.nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def build(config, rnn_variant: str, compile_model: bool, optimizer_kind: str = "default"):
    """A training step ``step(batch)`` for a fresh (seeded) model with the given recurrent stack."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    network = AcousticModel(len(tokenizer), config.features, config.model).train()
    if rnn_variant != "asr":
        network.rnn = TorchRNN(config.model, network.rnn.layers[0][0].input_size, packed=rnn_variant == "packed")
    options = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[optimizer_kind]
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, **options)  # "default": per tensor on CPU
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    if compile_model:
        # Not the front end: torch 2.11's inductor fails the conv front end's backward once shapes go
        # dynamic (a stride assertion on the 1-channel conv input, from the second sequence length on).
        network.rnn = torch.compile(network.rnn, dynamic=True)
        network.classify = torch.compile(network.classify, dynamic=True)

    def step(batch):
        log_probs, lengths = network(batch.features, batch.feature_lengths)
        loss = ctc(log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


# ---------------------------------------------------------------------------------------
# FLOP count and GEMM replay


@dataclass(frozen=True)
class Gemm:
    """``count`` GEMMs ``(M, K) x (K, N)``, one after another; ``kind`` groups them in the tables."""

    part: str  # "front end", "recurrent input projection", "recurrence", "output projection"
    kind: str  # the GEMM's row in the matmul-limit table
    m: int
    k: int
    n: int
    count: int = 1
    bias: bool = False  # forward of a layer: addmm, the weight a transposed view as nn.Linear uses it
    transposed_a: bool = False  # a weight gradient: the layer input enters transposed (a view)

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n * self.count


KINDS = {  # kind -> shape in words, for the table
    "conv fwd": "(B*T*F, C_in*k*k) x (C_in*k*k, C_out)",
    "conv bwd": "dX and dW of the above",
    "input proj fwd": "(B*T', I) x (I, 4H)",
    "input proj bwd dX": "(B*T', 4H) x (4H, I)",
    "input proj bwd dW": "(I, B*T') x (B*T', 4H)",
    "recurrent fwd": "(B, H) x (H, 4H), T' times",
    "recurrent bwd dh": "(B, 4H) x (4H, H), T'-1 times",
    "recurrent bwd dW": "(H, B*T') x (B*T', 4H)",
    "output proj fwd": "(B*T', D*H) x (D*H, V)",
    "output proj bwd": "dX and dW of the above",
}


def step_gemms(network: AcousticModel, batch: int, frames: int) -> list[Gemm]:
    """The GEMMs of one training step of ``network`` (the asr variant, which fixes all shapes) on a
    padded batch of ``batch`` utterances of ``frames`` feature frames."""
    gemms: list[Gemm] = []
    frontend = network.frontend
    if isinstance(frontend, ConvFrontEnd):
        time_, freq = frames, network.feature_config.n_mels
        for depth, conv in enumerate(frontend.convs):
            (kt, kf), (st, sf), (pt, pf) = conv.kernel_size, conv.stride, conv.padding
            time_, freq = (time_ + 2 * pt - kt) // st + 1, (freq + 2 * pf - kf) // sf + 1
            m, k, n = batch * time_ * freq, conv.in_channels * kt * kf, conv.out_channels
            gemms.append(Gemm("front end", "conv fwd", m, k, n, bias=True))
            gemms.append(Gemm("front end", "conv bwd", k, m, n, transposed_a=True))  # dW
            if depth > 0:  # the features need no gradient
                gemms.append(Gemm("front end", "conv bwd", m, n, k))  # dX
        out_frames = time_
    else:
        out_frames = -(-frames // frontend.factor)
    rows = batch * out_frames
    input_needs_grad = any(p.requires_grad for p in frontend.parameters())
    for depth, directions in enumerate(network.rnn.layers):
        for cell in directions:
            i, h = cell.input_size, cell.hidden_size
            g = cell.weight_ih_l0.shape[0]  # gates * hidden
            gemms.append(Gemm("recurrent input projection", "input proj fwd", rows, i, g, bias=True))
            if depth > 0 or input_needs_grad:
                gemms.append(Gemm("recurrent input projection", "input proj bwd dX", rows, g, i))
            gemms.append(Gemm("recurrent input projection", "input proj bwd dW", i, rows, g, transposed_a=True))
            gemms.append(Gemm("recurrence", "recurrent fwd", batch, h, g, count=out_frames, bias=True))
            # no gradient for the zero initial state: T' - 1 of them
            gemms.append(Gemm("recurrence", "recurrent bwd dh", batch, g, h, count=max(out_frames - 1, 0)))
            gemms.append(Gemm("recurrence", "recurrent bwd dW", h, rows, g, transposed_a=True))
    output = network.output
    gemms.append(Gemm("output projection", "output proj fwd", rows, output.in_features, output.out_features, bias=True))
    gemms.append(Gemm("output projection", "output proj bwd", rows, output.out_features, output.in_features))
    gemms.append(
        Gemm("output projection", "output proj bwd", output.in_features, rows, output.out_features, transposed_a=True)
    )
    return gemms


class Replay:
    """Runs a list of :class:`Gemm` and returns the ``(wall, CPU)`` seconds per kind. Operands are made
    once per shape, in the layouts the layers use; outputs are preallocated. A forward GEMM repeated
    over frames (the recurrence) accumulates in place into that frame's gates, ``gates[t] += h @ W_hh^T``;
    one done once adds the bias, ``addmm(b, x, W^T)``; backward ones are plain ``mm``."""

    def __init__(self):
        self.operands: dict[Gemm, tuple] = {}

    def _operands(self, gemm: Gemm):
        if gemm not in self.operands:
            m, k, n, count = gemm.m, gemm.k, gemm.n, gemm.count
            a = torch.randn(count, k, m).transpose(1, 2) if gemm.transposed_a else torch.randn(count, m, k)
            b = torch.randn(n, k).t() if gemm.bias else torch.randn(k, n)
            self.operands[gemm] = (a, b, torch.randn(n), torch.randn(count, m, n))
        return self.operands[gemm]

    def __call__(self, gemms: list[Gemm]) -> dict[str, tuple[float, float]]:
        seconds: dict[str, tuple[float, float]] = {}
        for gemm in gemms:
            a, b, bias, out = self._operands(gemm)
            started = clock()
            if gemm.bias and gemm.count > 1:
                for t in range(gemm.count):
                    out[t].addmm_(a[t], b)
            elif gemm.bias:
                torch.addmm(bias, a[0], b, out=out[0])
            else:
                for t in range(gemm.count):
                    torch.mm(a[t], b, out=out[t])
            elapsed = clock(started)
            before = seconds.get(gemm.kind, (0.0, 0.0))
            seconds[gemm.kind] = (before[0] + elapsed[0], before[1] + elapsed[1])
        return seconds


# ---------------------------------------------------------------------------------------


def clock(since: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(wall, CPU)`` seconds now (``time.perf_counter``, ``time.process_time``: all this process's
    threads), or elapsed since ``since``."""
    now = (time.perf_counter(), time.process_time())
    return now if since is None else (now[0] - since[0], now[1] - since[1])


def load_average() -> float:
    """The 1-minute load average (``/proc/loadavg``), or NaN where there is none."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "recipes" / "fsdd" / "conf.toml")
    parser.add_argument("--src", type=Path, default=ROOT / "data" / "fsdd_demo")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant and round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; each step's best round counts")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--batch-size", type=int, help="override [train] batch_size")
    parser.add_argument("--max-batch-seconds", type=float, help="override [train] max_batch_seconds")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override")
    parser.add_argument(
        "--variants", default="asr,packed,padded", help="comma-separated subset of " + ",".join(VARIANTS)
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the recurrent stack and the output layer (dynamic shapes)"
    )
    parser.add_argument(
        "--optimizer",
        choices=("default", "foreach", "fused"),
        default="default",
        help="AdamW implementation (default: torch's choice, one tensor at a time on CPU)",
    )
    parser.add_argument("--no-mkldnn", action="store_true", help="torch.backends.mkldnn.enabled = False")
    parser.add_argument("--work", type=Path, default=ROOT / "exp" / "benchmark_training")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False

    config = load_config(args.config, args.set)
    config = replace(config, augment=replace(config.augment, freq_masks=0, time_masks=0))
    config = replace(
        config,
        train=replace(
            config.train,
            batch_size=args.batch_size or config.train.batch_size,
            max_batch_seconds=args.max_batch_seconds or config.train.max_batch_seconds,
        ),
    )
    prepare_corpus("fsdd", args.src, args.work)
    utterances = read_manifest(args.work / "train.jsonl")
    dataset = SpeechDataset(utterances, LogMel(config.features), CharTokenizer())
    sampler = BucketBatchSampler(
        [u.duration for u in utterances], config.train.batch_size, config.train.max_batch_seconds, shuffle=True
    )
    batches = [collate([dataset[i] for i in indices]) for indices in list(sampler)[: args.steps]]  # the ones used
    order = [i % len(batches) for i in range(args.steps)]
    audio = sum(sum(utterances[i].duration for i in batches[b].indices) for b in order)

    reference = AcousticModel(len(CharTokenizer()), config.features, config.model)
    gemms = [step_gemms(reference, *batches[b].features.shape[:2]) for b in order]
    flops = [sum(g.flops for g in step) for step in gemms]

    steps = {variant: build(config, variant, args.compile, args.optimizer) for variant in variants}
    for variant in variants:  # warm-up
        steps[variant](batches[0])
    replay = Replay()
    replay(gemms[0])
    step_seconds = {variant: [[] for _ in order] for variant in variants}  # (wall, CPU) per round
    gemm_seconds: list[list[dict[str, tuple[float, float]]]] = [[] for _ in order]
    loads = {variant: [] for variant in variants + ["replay"]}
    started = time.perf_counter()
    for _ in range(args.repeats):
        for variant in variants:
            loads[variant].append(load_average())
            for s, b in enumerate(order):
                t0 = clock()
                steps[variant](batches[b])
                step_seconds[variant][s].append(clock(t0))
        loads["replay"].append(load_average())
        for s in range(len(order)):
            gemm_seconds[s].append(replay(gemms[s]))
    wall = time.perf_counter() - started

    # best round per step, by wall time (w = 0) and by CPU time (w = 1)
    seconds = [{v: sum(min(t[w] for t in times) for times in step_seconds[v]) for v in variants} for w in (0, 1)]
    kind_seconds: list[dict[str, float]] = [{}, {}]
    for rounds in gemm_seconds:
        for w in (0, 1):
            best = min(rounds, key=lambda r: sum(value[w] for value in r.values()))
            for kind, value in best.items():
                kind_seconds[w][kind] = kind_seconds[w].get(kind, 0.0) + value[w]
    limit_seconds = [sum(kind_seconds[w].values()) for w in (0, 1)]
    total_flops = sum(flops)
    shapes = [tuple(batches[b].features.shape[:2]) for b in order]
    frames_out = [next(g.count for g in step if g.kind == "recurrent fwd") for step in gemms]
    n = len(order)

    def load_text(values):
        return f"load {min(values):.1f}-{max(values):.1f}"

    print(
        f"{args.config.name}: {args.steps} steps, {audio:.0f} s of audio, {torch.get_num_threads()} torch threads, "
        f"best of {args.repeats} rounds{', torch.compile' if args.compile else ''}"
        f"{', mkldnn off' if args.no_mkldnn else ''}"
        f"{f', {args.optimizer} AdamW' if args.optimizer != 'default' else ''}"
        f"{f', OMP_WAIT_POLICY={policy}' if (policy := os.environ.get('OMP_WAIT_POLICY')) else ''}"
    )
    print(
        f"batches: <= {config.train.batch_size} utterances, <= {config.train.max_batch_seconds:g} s; mean B = "
        f"{statistics.mean(s[0] for s in shapes):.1f}, mean T = {statistics.mean(s[1] for s in shapes):.1f} feature "
        f"frames, T' = {statistics.mean(frames_out):.1f} after the front end; {os.cpu_count()} CPUs, load average "
        f"(1 min) {min(min(v) for v in loads.values()):.1f}-{max(max(v) for v in loads.values()):.1f}, "
        f"{wall:.0f} s timed"
    )
    for variant in variants:
        print(
            f"{VARIANTS[variant]} {audio / seconds[0][variant]:8.1f} audio-s/s "
            f"({audio / seconds[1][variant]:.1f} per CPU-second)"
        )
    if {"asr", "packed", "padded"} <= set(variants):
        print(
            f"asr vs packed: {seconds[0]['packed'] / seconds[0]['asr']:.2f}x faster; "
            f"vs inexact padded: {seconds[0]['padded'] / seconds[0]['asr']:.2f}x"
        )

    print("\nTraining FLOPs per step (2*M*K*N per GEMM at each batch's padded shapes; backward = 2x forward,")
    print("less input gradients nobody needs: features, zero initial states; elementwise work not counted):")
    parts: dict[str, int] = {}
    for step in gemms:
        for g in step:
            parts[g.part] = parts.get(g.part, 0) + g.flops
    for part, value in parts.items():
        print(f"  {part:<28} {value / n / 1e9:8.3f} GFLOP  {100 * value / total_flops:5.1f} %")
    print(f"  {'total':<28} {total_flops / n / 1e9:8.3f} GFLOP")

    print(
        f"\nMatmul limit: torch.mm/addmm at the model's own GEMM shapes, {torch.get_num_threads()} threads, "
        f"best of {args.repeats} per step ({load_text(loads['replay'])}):"
    )
    kind_flops: dict[str, int] = {}
    kind_calls: dict[str, int] = {}
    for step in gemms:
        for g in step:
            kind_flops[g.kind] = kind_flops.get(g.kind, 0) + g.flops
            kind_calls[g.kind] = kind_calls.get(g.kind, 0) + g.count
    print(f"  {'GEMM':<19} {'shape':<38} {'calls/step':>10} {'ms/step':>8} {'GFLOP/s':>8} {'per CPU-s':>9}")
    for kind, words in KINDS.items():
        if kind in kind_flops:
            print(
                f"  {kind:<19} {words:<38} {kind_calls[kind] / n:10.1f} {1000 * kind_seconds[0][kind] / n:8.2f} "
                f"{kind_flops[kind] / kind_seconds[0][kind] / 1e9:8.1f} {kind_flops[kind] / kind_seconds[1][kind] / 1e9:9.1f}"
            )
    print(
        f"  {'all':<19} {'':<38} {sum(kind_calls.values()) / n:10.1f} {1000 * limit_seconds[0] / n:8.2f} "
        f"{total_flops / limit_seconds[0] / 1e9:8.1f} {total_flops / limit_seconds[1] / 1e9:9.1f}  <- the matmul limit"
    )

    print("\nAchieved (counted FLOPs / measured step time; CPU time is less sensitive to other jobs with 1 thread):")
    print(
        f"  {'variant':<8} {'ms/step':>8} {'GFLOP/s':>8} {'% of limit':>10} {'CPU ms':>8} {'per CPU-s':>9} "
        f"{'% (CPU)':>8}  load"
    )
    for variant in variants:
        print(
            f"  {variant:<8} {1000 * seconds[0][variant] / n:8.2f} {total_flops / seconds[0][variant] / 1e9:8.1f} "
            f"{100 * limit_seconds[0] / seconds[0][variant]:9.1f} % {1000 * seconds[1][variant] / n:8.2f} "
            f"{total_flops / seconds[1][variant] / 1e9:9.1f} {100 * limit_seconds[1] / seconds[1][variant]:7.1f} %  "
            f"{load_text(loads[variant])}"
        )
    busiest = max(max(v) for v in loads.values())
    if torch.get_num_threads() > 1 and busiest > (os.cpu_count() or 1):
        print(
            f"note: load average {busiest:.1f} on {os.cpu_count()} CPUs: other jobs hold the cores, and with "
            f"{torch.get_num_threads()} threads every small GEMM waits for its slowest thread; "
            f"--threads 1 measures the kernels rather than the scheduler"
        )


if __name__ == "__main__":
    main()
