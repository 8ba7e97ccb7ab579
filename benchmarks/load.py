"""Training and transcription on a loaded machine: torch's old thread count against asr's choice.

    python benchmarks/load.py [--competitors 0,1,2] [--train-utterances 96] [--files 100] [--cap 60]

Runs a short ``asr train`` (recipes/fsdd/demo.toml, one epoch over the first
``--train-utterances`` demo clips, validated on 25) and an ``asr transcribe`` of
``--files`` demo clips, each with 0, 1 and 2 competing CPU-bound processes (busy loops
that end by themselves after ``--cap`` x runs seconds and are killed when a run ends),
two ways:

- before: torch's default thread count, all cores (what asr did before it chose), forced
  with ``--threads N``;
- after: asr's automatic choice (no ``--threads``, no ``OMP_NUM_THREADS``).

It prints each run's wall time, user CPU time and the slowdown against the same way
with no competitor. A run that passes ``--cap`` seconds is stopped and shown as ``>cap``.
The default run takes about 3-5 minutes on two cores; other work running on the machine
counts as competition too (the load average is printed first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def default_torch_threads(env: dict) -> int:
    """The intra-op threads torch starts with here when nothing sets them: the old behaviour."""
    code = "import torch; print(torch.get_num_threads())"
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)


def train_command(config: Path, train: Path, dev: Path, exp: Path) -> list[str]:
    """The ``asr train`` command line that trains ``config`` on ``train`` into ``exp``."""
    return [
        sys.executable,
        "-m",
        "asr",
        "train",
        "--config",
        str(config),
        "--train",
        str(train),
        "--dev",
        str(dev),
        "--exp",
        str(exp),
    ]


def run_timed(command: list[str], env: dict, cap: float, log: Path) -> tuple[float, float, bool]:
    """Wall seconds, user CPU seconds (the process and the children it waited for) and whether
    it finished within ``cap`` seconds (else it is killed)."""
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        deadline = started + cap
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                process.returncode = -9
                return time.perf_counter() - started, usage.ru_utime, False
            time.sleep(0.05)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}); see {log}:\n{log.read_text()[-2000:]}")
    return wall, usage.ru_utime, True


class Competitors:
    """``count`` busy-loop processes for the duration of a ``with`` block (and never longer than
    ``seconds``, even if this script dies)."""

    def __init__(self, count: int, seconds: float):
        self.count, self.seconds, self.processes = count, seconds, []

    def __enter__(self):
        self.processes = [
            subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(self.seconds)]) for _ in range(self.count)
        ]
        time.sleep(0.5 if self.count else 0)  # let them get going before the measured run chooses its threads
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()


def prepare(work: Path, train_utterances: int, epochs: int, env: dict) -> tuple[Path, Path, Path, Path]:
    """Demo manifests (a training subset, 25 dev clips) and the demo config with ``epochs``."""
    data = work / "data"
    if not (data / "train.jsonl").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "asr",
                "prepare",
                "fsdd",
                "--src",
                str(ROOT / "data" / "fsdd_demo"),
                "--out",
                str(data),
            ],
            env=env,
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
    train = work / "train_subset.jsonl"
    train.write_text("".join((data / "train.jsonl").read_text().splitlines(keepends=True)[:train_utterances]))
    dev = work / "dev_subset.jsonl"
    dev.write_text("".join((data / "dev.jsonl").read_text().splitlines(keepends=True)[:25]))
    config = work / "demo.toml"
    text = (ROOT / "recipes" / "fsdd" / "demo.toml").read_text()
    config.write_text(text.replace("epochs = 100", f"epochs = {epochs}") + "checkpoint_every_steps = 0\n")
    return data, train, dev, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--competitors", default="0,1,2", help="comma-separated numbers of busy loops (default 0,1,2)")
    parser.add_argument("--tasks", default="train,transcribe", help="train, transcribe or both (default)")
    parser.add_argument("--ways", default="before,after", help="before (all cores), after (asr's choice), or both")
    parser.add_argument("--train-utterances", type=int, default=96, help="training clips (default 96: 6 steps)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default 1)")
    parser.add_argument("--files", type=int, default=100, help="clips transcribed in one call (default 100)")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds after which a run is stopped (default 60)")
    parser.add_argument("--work", type=Path, default=ROOT / "exp" / "benchmark_load")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    counts = [int(c) for c in args.competitors.split(",")]
    tasks = [t.strip() for t in args.tasks.split(",")]
    ways = [w.strip() for w in args.ways.split(",")]
    if 0 not in counts:
        counts.insert(0, 0)  # the reference
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    all_cores = default_torch_threads(env)
    args.work.mkdir(parents=True, exist_ok=True)
    data, train, dev, config = prepare(args.work, args.train_utterances, args.epochs, env)
    with open("/proc/loadavg") as f:
        load = f.read().split()
    print(
        f"{os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} usable; torch's default threads {all_cores}; "
        f"load average {' '.join(load[:3])} before starting (other work counts as competition)"
    )
    print(
        f"train: {args.epochs} epoch(s) over {args.train_utterances} clips (recipes/fsdd/demo.toml); "
        f"transcribe: {args.files} clips; runs stopped after {args.cap:g} s"
    )

    files = [str(p) for p in sorted((ROOT / "data" / "fsdd_demo" / "recordings").glob("*.wav"))[: args.files]]
    results, budget = [], args.cap * (len(counts) * len(tasks) * len(ways) + 2)
    model_dir = None  # what transcribe uses: the first model trained here
    print(f"\n{'task':<11}{'way':<8}{'threads':>8}{'busy':>6}{'wall s':>9}{'user s':>9}{'slowdown':>10}")
    for task in tasks:
        if task == "transcribe" and model_dir is None:
            model_dir = args.work / "model"
            shutil.rmtree(model_dir, ignore_errors=True)
            subprocess.run(
                train_command(config, train, dev, model_dir),
                env=env,
                check=True,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for way in ways:
            idle = None
            for count in counts:
                exp = args.work / f"exp_{way}_{count}"
                if task == "train":
                    shutil.rmtree(exp, ignore_errors=True)
                    command = train_command(config, train, dev, exp)
                else:  # -v: transcribe logs its thread choice at debug level
                    command = [sys.executable, "-m", "asr", "-v", "transcribe", *files, "--model", str(model_dir)]
                if way == "before":
                    command += ["--threads", str(all_cores)]
                log = args.work / f"{task}_{way}_{count}.log"
                with Competitors(count, budget):
                    wall, user, finished = run_timed(command, env, args.cap, log)
                if task == "train" and finished and model_dir is None:
                    model_dir = exp
                chosen = next(
                    (
                        line.split("torch threads: ")[1].split()[0]
                        for line in log.read_text().splitlines()
                        if "torch threads: " in line
                    ),
                    "?",
                )
                if count == 0:
                    idle = wall if finished else None
                slowdown = f"{wall / idle:.2f}x" if idle else "-"
                shown = f"{wall:.1f}" if finished else f">{args.cap:g}"
                print(
                    f"{task:<11}{way:<8}{chosen:>8}{count:>6}{shown:>9}{user:>9.1f}{slowdown:>10}"
                    + ("" if finished else " (stopped)"),
                    flush=True,
                )
                results.append(
                    {
                        "task": task,
                        "way": way,
                        "threads": chosen,
                        "competitors": count,
                        "wall": wall,
                        "user": user,
                        "finished": finished,
                        "slowdown": wall / idle if idle else None,
                    }
                )
    print()
    for task in tasks:
        for count in counts:
            pair = {r["way"]: r for r in results if r["task"] == task and r["competitors"] == count}
            if {"before", "after"} <= pair.keys():
                before, after = pair["before"], pair["after"]
                bound = "" if before["finished"] else ">="  # a stopped run: the ratio is at least this
                print(
                    f"{task}, {count} busy: after {after['wall']:.1f} s ({after['threads']} thread(s)) vs before "
                    f"{before['wall']:.1f} s ({before['threads']}): {bound}{before['wall'] / after['wall']:.2f}x "
                    f"the speed, user CPU {after['user']:.1f} s vs {before['user']:.1f} s"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
