"""How many threads torch computes with: no more than the cores that are free.

torch starts one OpenMP thread per core it sees, and those threads spin while they
wait for each other. On a machine whose cores are busy with other work that is
ruinous: with two other jobs on two cores, ``make demo`` took 121 minutes instead of
4, and burnt 98 minutes of CPU time on 8 minutes of work. :func:`choose_threads`
picks the number deliberately:

1. ``--threads N`` when given;
2. else ``OMP_NUM_THREADS`` when it is set (a positive whole number);
3. else the cores this process may run on (its CPU affinity, and a cgroup CPU quota
   when there is one), less those that other processes are using right now (the
   run queue of ``/proc/loadavg``, when the process may use every core of the
   machine, so that queue is about the same cores), less ``reserve`` (DataLoader
   workers), and at least 1.

DataLoader worker processes compute with one thread each (:func:`single_thread_worker`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

LOADAVG = Path("/proc/loadavg")


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # why, for the log


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, quota) if quota else cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs a cgroup quota allows (rounded up), or ``None`` when there is no quota."""
    try:
        fields = (root / "cpu.max").read_text().split()  # cgroup v2: "max 100000" or "200000 100000"
        quota, period = (fields[0], fields[1]) if len(fields) == 2 else ("max", "1")
    except OSError:
        try:  # cgroup v1
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max"
        return None
    if quota_us <= 0 or period_us <= 0:  # v1 writes -1 for no quota
        return None
    return max(1, math.ceil(quota_us / period_us))


def other_runnable(
    samples: int = 5,
    pause: float = 0.02,
    read: Callable[[], str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """Threads of other processes that are runnable now: the running count of
    ``/proc/loadavg`` less this one, the least of a few readings (a process that runs for a
    moment is not a competitor; the first reading of none ends the count, so an idle machine
    costs no wait); ``None`` where the file cannot be read."""
    read = read or LOADAVG.read_text
    counts = []
    for sample in range(samples):
        try:
            counts.append(int(read().split()[3].split("/")[0]) - 1)  # "0.52 0.58 0.59 3/467 12345": 3 running
        except (OSError, IndexError, ValueError):
            return None
        if counts[-1] <= 0:
            break
        if sample + 1 < samples:
            sleep(pause)
    return max(0, min(counts))


def _environment_threads(environ: Mapping[str, str]) -> int | None:
    value = environ.get("OMP_NUM_THREADS", "").strip()
    try:
        threads = int(value.split(",")[0])  # OpenMP allows a list per nesting level; the first is ours
    except ValueError:
        if value:
            log.warning("OMP_NUM_THREADS=%r is not a whole number: ignored", value)
        return None
    return threads if threads > 0 else None


def choose_threads(
    requested: int | None = None,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
    machine_cores: int | None = None,
    others: int | None | Callable[[], int | None] = other_runnable,
    reserve: int = 0,
) -> ThreadChoice:
    """The number of torch intra-op threads to use (see the module's docstring for the rules).

    ``cores`` (default :func:`usable_cores`), ``machine_cores`` (default ``os.cpu_count()``)
    and ``others`` (runnable threads of other processes, or a function giving them; default
    :func:`other_runnable`) are parameters so that tests can set them.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, not {requested}")
        return ThreadChoice(requested, "--threads")
    from_environment = _environment_threads(os.environ if environ is None else environ)
    if from_environment is not None:
        return ThreadChoice(from_environment, "OMP_NUM_THREADS")
    cores = usable_cores() if cores is None else cores
    machine_cores = (os.cpu_count() or cores) if machine_cores is None else machine_cores
    reason = f"{cores} core(s) usable"
    free = cores
    if cores >= machine_cores:  # the run queue counts every core: it says how busy ours are only when we have them all
        busy = others() if callable(others) else others
        if busy:
            free = cores - busy
            reason += f", {busy} other runnable thread(s)"
    if reserve:
        free -= reserve
        reason += f", {reserve} DataLoader worker(s)"
    return ThreadChoice(max(1, min(cores, free)), reason)


def configure_threads(requested: int | None = None, reserve: int = 0, level: int = logging.INFO) -> int:
    """Set torch's intra-op (and, when it is still possible, inter-op) threads by
    :func:`choose_threads` and log the choice at ``level``; returns the number of threads."""
    choice = choose_threads(requested, reserve=reserve)
    torch.set_num_threads(choice.threads)
    try:  # only allowed before the first inter-op parallel work
        torch.set_num_interop_threads(choice.threads)
    except RuntimeError:
        pass
    log.log(level, "torch threads: %d (%s; set with --threads N or OMP_NUM_THREADS)", choice.threads, choice.reason)
    return choice.threads


def single_thread_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: each worker process computes with one thread (torch does
    this too, today; saying so keeps it true whatever a later torch does)."""
    torch.set_num_threads(1)
