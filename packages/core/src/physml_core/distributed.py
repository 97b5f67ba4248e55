"""Distributed data-parallel training that runs unchanged under ``torchrun``.

``init_distributed`` reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT); without them it returns a single-process context, so the same
training script works with ``python train.py`` and ``torchrun --nproc-per-node N train.py``.
The backend is NCCL on CUDA and Gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from .device import resolve_device
from .errors import DeviceError

T = TypeVar("T")

__all__ = [
    "DistContext",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "init_distributed",
    "unwrap_model",
    "wrap_model",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0: the process that logs, writes checkpoints and reports."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def init_distributed(device: str | torch.device = "auto") -> DistContext:
    """Join the process group if launched by torchrun, else return a single-process context.

    On CUDA each process uses ``cuda:LOCAL_RANK``.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistContext(device=resolve_device(device))
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    base = resolve_device(device)
    if base.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s); "
                "lower --nproc-per-node"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = base
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev,
                       backend=backend)


def wrap_model(model: torch.nn.Module, ctx: DistContext, **ddp_kwargs: Any) -> torch.nn.Module:
    """Move ``model`` to the context's device and wrap it in DDP when distributed."""
    model = model.to(ctx.device)
    if not ctx.is_distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if ctx.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [ctx.device.index])
    return DistributedDataParallel(model, **ddp_kwargs)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (for saving state dicts without the 'module.' prefix)."""
    return getattr(model, "module", model)


def all_reduce_mean(value: float | torch.Tensor, ctx: DistContext) -> float:
    """Mean of a scalar over all ranks (the value itself when single-process)."""
    if not ctx.is_distributed:
        return float(value)
    tensor = torch.as_tensor(value, dtype=torch.float64, device=ctx.device).clone()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / ctx.world_size


def broadcast_object(obj: T, ctx: DistContext) -> T:
    """Rank 0's ``obj`` on every rank (``obj`` itself when single-process); picklable only."""
    if not ctx.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op when single-process)."""
    if ctx.is_distributed and dist.is_initialized():
        dist.barrier()
