"""physml-core: the shared foundation of the physml packages.

Modules: :mod:`~physml_core.device` (devices, seeding, autocast), :mod:`~physml_core.logging`
(loggers, run folders, TensorBoard + JSONL metrics, progress bars), :mod:`~physml_core.hdf5`
(schema-validated HDF5 I/O), :mod:`~physml_core.checkpoint` (safe atomic checkpoints),
:mod:`~physml_core.distributed` (torchrun/DDP helpers), :mod:`~physml_core.config` (typed job
configs), :mod:`~physml_core.cli` (shared click options and error convention),
:mod:`~physml_core.provenance` (row provenance of files and checkpoints, the held-out rule),
:mod:`~physml_core.training` (the one training loop: run folder, resume policy, checkpoints,
time limit, DDP), :mod:`~physml_core.options` (CLI options generated from config dataclasses
over one shared table), :mod:`~physml_core.split` (the one held-out rule: the last units of a
file), :mod:`~physml_core.stats` (the Frechet distance that calo and clarm share).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .errors import (
    CheckpointError,
    ConfigError,
    DataFormatError,
    DeviceError,
    PhysmlError,
    PhysmlWarning,
)

if TYPE_CHECKING:
    from .atomic import atomic_path
    from .checkpoint import Checkpoint, checkpoint_path, latest, load_checkpoint, save_checkpoint
    from .config import from_dict, load_json, save_json, to_dict
    from .device import (
        autocast,
        available_devices,
        device_summary,
        resolve_device,
        seed_everything,
    )
    from .hdf5 import (
        DatasetSpec,
        H5Appender,
        H5Reader,
        H5TorchDataset,
        Schema,
        concat_h5,
        read_h5,
        validate_file,
        write_h5,
    )
    from .logging import RunLogger, default_run_dir, get_logger, progress
    from .options import config_from_cli, opt, options_from
    from .provenance import Provenance, ProvenanceOverlapError, check_disjoint
    from .training import RunConfig, TrainingJob, TrainResult, TrainState, fit, load_trained

# Submodules are imported on first use (PEP 562), so that `import physml_core.errors` or a CLI's
# `--help` does not pay for importing torch.
_LAZY = {
    "atomic_path": "atomic",
    **dict.fromkeys(("Checkpoint", "checkpoint_path", "latest", "load_checkpoint",
                     "save_checkpoint"), "checkpoint"),
    **dict.fromkeys(("from_dict", "load_json", "save_json", "to_dict"), "config"),
    **dict.fromkeys(("autocast", "available_devices", "device_summary", "resolve_device",
                     "seed_everything"), "device"),
    **dict.fromkeys(("DatasetSpec", "H5Appender", "H5Reader", "H5TorchDataset", "Schema",
                     "concat_h5", "read_h5", "validate_file", "write_h5"), "hdf5"),
    **dict.fromkeys(("RunLogger", "default_run_dir", "get_logger", "progress"), "logging"),
    **dict.fromkeys(("Provenance", "ProvenanceOverlapError", "check_disjoint"), "provenance"),
    **dict.fromkeys(("config_from_cli", "opt", "options_from"), "options"),
    **dict.fromkeys(("RunConfig", "TrainResult", "TrainState", "TrainingJob", "fit",
                     "load_trained"), "training"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'physml_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


try:
    __version__ = version("physml-core")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ConfigError",
    "DataFormatError",
    "DatasetSpec",
    "DeviceError",
    "H5Appender",
    "H5Reader",
    "H5TorchDataset",
    "PhysmlError",
    "PhysmlWarning",
    "Provenance",
    "ProvenanceOverlapError",
    "RunConfig",
    "RunLogger",
    "Schema",
    "TrainResult",
    "TrainState",
    "TrainingJob",
    "__version__",
    "atomic_path",
    "autocast",
    "available_devices",
    "check_disjoint",
    "checkpoint_path",
    "concat_h5",
    "config_from_cli",
    "default_run_dir",
    "device_summary",
    "fit",
    "from_dict",
    "get_logger",
    "latest",
    "load_checkpoint",
    "load_json",
    "load_trained",
    "opt",
    "options_from",
    "progress",
    "read_h5",
    "resolve_device",
    "save_checkpoint",
    "save_json",
    "seed_everything",
    "to_dict",
    "validate_file",
    "write_h5",
]
