"""Training checkpoints: atomic, self-describing, and safe to load.

A checkpoint holds the package and model name, the step and what it counts (``step_unit``:
"epoch" for the supervised trainers, "env_step" for reinforcement learning), the hash of the
job config that decides whether a run folder may resume (see :mod:`physml_core.training`), the
job config (plain data), any preprocessing state (``extra``), the state dicts of models/optimisers/schedulers and the RNG
states of Python, NumPy and torch.  Files are written atomically and read with
``torch.load(weights_only=True)``, so loading a checkpoint can never execute code.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .atomic import atomic_path
from .config import _plain
from .errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "checkpoint_path",
    "latest",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^ckpt_(\d+)\.pt$")

Stateful = Any  # anything with state_dict() / load_state_dict()


def _states(obj: Stateful | Mapping[str, Stateful] | None) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return {name: item.state_dict() for name, item in obj.items()}
    return obj.state_dict()


def _capture_rng() -> dict[str, Any]:
    version, keys, pos = random.getstate()
    # the legacy global RNG is what we save: (name, keys, pos, has_gauss, cached_gaussian)
    np_state = cast("tuple[str, np.ndarray, int, int, float]",
                    np.random.get_state(legacy=True))  # noqa: NPY002
    state: dict[str, Any] = {
        "python": [version, list(keys), pos],
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: Mapping[str, Any]) -> None:
    version, keys, pos = state["python"]
    random.setstate((version, tuple(keys), pos))
    np_state = state["numpy"]
    np.random.set_state((  # noqa: NPY002
        "MT19937",
        np_state["keys"].numpy().astype(np.uint32),
        np_state["pos"],
        np_state["has_gauss"],
        np_state["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [s.cpu() for s in state["cuda"]][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)


def _to_storable(value: Any) -> Any:
    """Convert numpy arrays to tensors (weights_only-safe) and dataclasses to dicts."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Mapping):
        return {k: _to_storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_storable(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value
    return _plain(value)


def save_checkpoint(
    path: str | Path,
    *,
    package: str,
    model_name: str,
    model: Stateful | Mapping[str, Stateful] | None = None,
    optimizer: Stateful | Mapping[str, Stateful] | None = None,
    scheduler: Stateful | Mapping[str, Stateful] | None = None,
    step: int = 0,
    config: Any = None,
    extra: Mapping[str, Any] | None = None,
    rng: bool = True,
    step_unit: str = "step",
    config_hash: str | None = None,
) -> Path:
    """Write a checkpoint atomically (temp file + rename) and return its path.

    ``model``/``optimizer``/``scheduler`` are objects with ``state_dict()`` or mappings
    name -> object.  ``config`` may be a dataclass or a mapping of plain values; ``extra`` holds
    plain values, tensors or numpy arrays (stored as tensors).
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "package": str(package),
        "model_name": str(model_name),
        "step": int(step),
        "step_unit": str(step_unit),
        "config_hash": config_hash,
        "config": _to_storable(config) if config is not None else None,
        "extra": _to_storable(dict(extra or {})),
        "model": _states(model),
        "optimizer": _states(optimizer),
        "scheduler": _states(scheduler),
        "rng": _capture_rng() if rng else None,
        "torch_version": str(torch.__version__),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``state`` is the raw dictionary.  ``step`` counts ``step_unit``s;
    ``config_hash`` is None for checkpoints written outside :mod:`physml_core.training`."""

    path: Path
    package: str
    model_name: str
    step: int
    config: Any
    extra: dict[str, Any]
    state: dict[str, Any] = field(repr=False)
    step_unit: str = "step"
    config_hash: str | None = None

    def restore(
        self,
        model: Stateful | Mapping[str, Stateful] | None = None,
        optimizer: Stateful | Mapping[str, Stateful] | None = None,
        scheduler: Stateful | Mapping[str, Stateful] | None = None,
        rng: bool = True,
        strict: bool = True,
    ) -> None:
        """Load the stored states into the given objects (and the global RNGs)."""
        for what, target in (("model", model), ("optimizer", optimizer),
                             ("scheduler", scheduler)):
            if target is None:
                continue
            stored = self.state.get(what)
            if stored is None:
                raise CheckpointError(f"{self.path}: checkpoint holds no {what} state")
            try:
                if isinstance(target, Mapping):
                    missing = sorted(set(target) - set(stored))
                    if missing:
                        raise CheckpointError(
                            f"{self.path}: checkpoint has no {what} state for {missing} "
                            f"(it has {sorted(stored)})"
                        )
                    for name, item in target.items():
                        if what == "model":
                            item.load_state_dict(stored[name], strict=strict)
                        else:
                            item.load_state_dict(stored[name])
                elif what == "model":
                    target.load_state_dict(stored, strict=strict)
                else:
                    target.load_state_dict(stored)
            except (RuntimeError, KeyError, ValueError) as exc:
                if isinstance(exc, CheckpointError):
                    raise
                first = str(exc).strip().splitlines()[0]
                raise CheckpointError(
                    f"{self.path}: {what} state does not fit ({first}); was the checkpoint made "
                    "with another configuration?"
                ) from None
        if rng and self.state.get("rng") is not None:
            _restore_rng(self.state["rng"])


def load_checkpoint(
    path: str | Path,
    *,
    package: str | None = None,
    model_name: str | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load a checkpoint safely; refuse corrupt files and checkpoints of another package/model."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        found = latest(path)
        if found is None:
            raise CheckpointError(f"{path}: folder holds no checkpoint (ckpt_<step>.pt)")
        path = found
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any failure inside torch.load means "not a readable checkpoint"
        text = str(exc)
        if "WeightsUnpickler error:" in text:
            # torch's first paragraph suggests weights_only=False, which is no advice for a
            # file that is simply not a checkpoint: keep only the unpickler's own complaint
            text = text.split("WeightsUnpickler error:", 1)[1]
        first = (text.strip().splitlines() or [type(exc).__name__])[0]
        if "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"{path}: holds Python objects other than tensors and plain data, so it is not "
                "a physml checkpoint; refusing to unpickle it (loading could run code)"
            ) from None
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupt, truncated or not a torch file: "
            f"{first[:200]})"
        ) from None
    if not isinstance(state, dict) or "format_version" not in state or "package" not in state:
        raise CheckpointError(f"{path}: not a physml checkpoint (no package/format header)")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {state['format_version']} is newer than this "
            f"physml-core understands ({FORMAT_VERSION}); upgrade physml-core"
        )
    if package is not None and state["package"] != package:
        raise CheckpointError(
            f"{path}: checkpoint belongs to package '{state['package']}' "
            f"(model '{state['model_name']}'), not '{package}'"
        )
    if model_name is not None and state["model_name"] != model_name:
        raise CheckpointError(
            f"{path}: checkpoint holds model '{state['model_name']}', expected '{model_name}'"
        )
    return Checkpoint(
        path=path,
        package=state["package"],
        model_name=state["model_name"],
        step=int(state["step"]),
        config=state.get("config"),
        extra=dict(state.get("extra") or {}),
        state=state,
        step_unit=str(state.get("step_unit", "step")),
        config_hash=state.get("config_hash"),
    )


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """``<run_dir>/checkpoints/ckpt_<step:09d>.pt``."""
    return Path(run_dir) / "checkpoints" / f"ckpt_{int(step):09d}.pt"


def latest(run_dir: str | Path) -> Path | None:
    """Newest checkpoint (highest step) in ``run_dir/checkpoints`` or ``run_dir``; None if none."""
    run_dir = Path(run_dir)
    best: tuple[int, Path] | None = None
    for folder in (run_dir / "checkpoints", run_dir):
        if not folder.is_dir():
            continue
        for candidate in folder.iterdir():
            match = _NAME_RE.match(candidate.name)
            if match and candidate.is_file():
                step = int(match.group(1))
                if best is None or step > best[0]:
                    best = (step, candidate)
    return None if best is None else best[1]
