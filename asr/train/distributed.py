"""Data-parallel training across processes with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc-per-node N -m asr train ...`` starts N copies of the training
command and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in each; multi-node runs use torchrun's own ``--nnodes``,
``--node-rank`` and ``--rdzv-*`` flags. Without those variables everything here
is a no-op and training runs in one process.

The backend is NCCL when the processes train on CUDA (one GPU per process,
``cuda:LOCAL_RANK``), gloo on CPU.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from asr.utils.errors import AsrError

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0  # this process' index among all processes (0 writes files)
    world_size: int = 1  # number of processes training together
    local_rank: int = 0  # index among the processes on this machine (picks the GPU)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def share(self, items: list[T]) -> list[T]:
        """This process' share of ``items``: every ``world_size``-th one from ``rank``."""
        return items[self.rank :: self.world_size]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise AsrError(f"environment variable {name}={value!r} is not an integer") from None


def context_from_environment() -> DistributedContext:
    """The rank and world size torchrun put in the environment (one process when absent)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if not 0 <= rank < max(1, world_size):
        raise AsrError(f"RANK={rank} is outside WORLD_SIZE={world_size}")
    return DistributedContext(rank=rank, world_size=world_size, local_rank=_env_int("LOCAL_RANK", 0))


def select_device(name: str, context: DistributedContext) -> str:
    """``"auto"`` -> CUDA when present; each process of a multi-GPU run gets ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and context.is_distributed:
        if context.local_rank >= torch.cuda.device_count():
            raise AsrError(f"LOCAL_RANK={context.local_rank} but this machine has {torch.cuda.device_count()} GPU(s)")
        name = f"cuda:{context.local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AsrError(f"device {name!r} requested but CUDA is not available")
    if torch.device(name).index is not None:
        torch.cuda.set_device(torch.device(name))  # NCCL and all_gather_object use the current device
    return name


def start(context: DistributedContext, device: str) -> None:
    """Join the process group (NCCL for CUDA, gloo for CPU); nothing to do for one process."""
    if context.is_distributed and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)


def stop(context: DistributedContext) -> None:
    """Leave the process group and wait for its threads to end.

    The caller must have dropped its DistributedDataParallel wrapper: the wrapper keeps the group
    alive (DDP's own reference cycles until a garbage collection), and a gloo thread still
    finishing a collective while Python shuts down aborts the process ("terminate called without
    an active exception": 6 exits in 30 of the two-process test before this order was kept).
    """
    if context.is_distributed and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Element-wise sum of ``values`` over all processes (returned; the input is not kept)."""
    if context.is_distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_from_first(tensors: list[torch.Tensor], context: DistributedContext) -> None:
    """Overwrite ``tensors`` in place with the first process' values."""
    if context.is_distributed:
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def gather(obj: Any, context: DistributedContext) -> list[Any]:
    """Every process' ``obj`` (picklable plain values), in rank order, on every process."""
    if not context.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(context: DistributedContext) -> None:
    if context.is_distributed:
        dist.barrier()
