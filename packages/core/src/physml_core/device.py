"""Compute devices, seeding and mixed precision.

``resolve_device`` turns a user string ("auto", "cpu", "cuda", "cuda:N", "mps") into a
:class:`torch.device` and refuses devices that are not present with a message that lists the
ones that are.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
from collections.abc import Iterator

import numpy as np
import torch

from .errors import DeviceError

__all__ = [
    "autocast",
    "available_devices",
    "device_summary",
    "resolve_device",
    "seed_everything",
]

_CUDA_RE = re.compile(r"^cuda(?::(\d+))?$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Names of the devices usable on this machine, e.g. ``["cpu", "cuda:0"]``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Return the :class:`torch.device` for ``spec``.

    ``"auto"`` (or ``None``) picks the first CUDA device, then MPS, then the CPU.  A device that is
    not present raises :class:`DeviceError` naming the available ones.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec is None:
        spec = "auto"
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string or torch.device, got {type(spec).__name__}")
    name = spec.strip().lower()
    available = ", ".join(available_devices())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError(f"device 'mps' is not available here (available: {available})")
        return torch.device("mps")
    match = _CUDA_RE.match(name)
    if match is None:
        raise DeviceError(
            f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps (available: {available})"
        )
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} requested but CUDA is not available (available: {available}); "
            "use --device cpu"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {spec!r} does not exist: {count} CUDA device(s) ({available})")
    return torch.device("cuda", index)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    With ``deterministic=True`` torch is also asked for deterministic algorithms (slower; some
    CUDA operations then need ``CUBLAS_WORKSPACE_CONFIG``, which is set if missing).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (seeds legacy global users too)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def autocast(device: torch.device | str, dtype: str | None = "auto") -> Iterator[None]:
    """Mixed-precision context for inference and training.

    ``dtype="auto"`` uses bf16 on CUDA devices that support it (else fp16) and does nothing on
    the CPU; ``"bf16"`` on the CPU enables CPU bf16 autocast explicitly; ``"fp32"`` or ``None``
    disables autocast.
    """
    device = torch.device(device) if isinstance(device, str) else device
    if dtype not in ("auto", "bf16", "fp16", "fp32", None):
        raise ValueError(f"unknown autocast dtype {dtype!r}: use auto, bf16, fp16 or fp32")
    if dtype in ("fp32", None) or (dtype == "auto" and device.type != "cuda"):
        yield
        return
    if dtype == "auto":
        dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and dtype == "fp16":
        raise ValueError("fp16 autocast is not supported on the CPU: use bf16 or fp32")
    with torch.autocast(device_type=device.type, dtype=_DTYPES[dtype]):
        yield


def device_summary(device: torch.device | str) -> str:
    """One line describing ``device`` for logs, e.g. ``"cpu (2 threads), torch 2.5.1"``."""
    device = torch.device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        index = device.index or 0
        props = torch.cuda.get_device_properties(index)
        memory_gib = props.total_memory / 2**30
        what = f"cuda:{index} {props.name} ({memory_gib:.0f} GiB, CUDA {torch.version.cuda})"
    elif device.type == "mps":
        what = "mps (Apple GPU)"
    else:
        what = f"cpu ({torch.get_num_threads()} threads)"
    return f"{what}, torch {torch.__version__}"
