"""``python -m physml_core``: a self-check of this installation.

Prints the device, writes and re-reads a small HDF5 file and a checkpoint in a temporary folder,
and reports the result as JSON (exit status 1 if a check fails).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import (
    DatasetSpec,
    Schema,
    __version__,
    device_summary,
    load_checkpoint,
    read_h5,
    resolve_device,
    save_checkpoint,
    write_h5,
)


def selfcheck() -> dict:
    """Run the checks and return a report."""
    report: dict = {"physml_core": __version__, "device": device_summary(resolve_device("auto"))}
    schema = Schema("selfcheck", (DatasetSpec("x", (None, 4), unit="m"),))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32)
        write_h5(Path(tmp) / "x.h5", schema, {"x": data})
        report["hdf5_ok"] = bool(np.array_equal(read_h5(Path(tmp) / "x.h5", schema)["x"], data))
        model = torch.nn.Linear(4, 2)
        save_checkpoint(Path(tmp) / "c.pt", package="physml-core", model_name="selfcheck",
                        model=model, step=1)
        other = torch.nn.Linear(4, 2)
        load_checkpoint(Path(tmp) / "c.pt", package="physml-core").restore(model=other)
        report["checkpoint_ok"] = bool(torch.equal(model.weight, other.weight))
        report["seconds"] = round(time.perf_counter() - start, 3)
    report["ok"] = report["hdf5_ok"] and report["checkpoint_ok"]
    return report


def main() -> int:
    report = selfcheck()
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
