"""Synthetic phase-space files of any size (e.g. the Zenodo size) for streaming benchmarks.

The images are not physics: every (run, module, projection) is one Gaussian blob with a random
centre and width (separable, normalised to unit sum), which is enough to exercise the reader,
the normaliser and the CVAE at the real data volume.  Written a few runs at a time, so the
full 1400 runs x 48 modules never sit in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from physml_core.hdf5 import H5Appender

from .data import NUM_PROJECTIONS, PHASE_SPACE_SCHEMA, check_resolution

__all__ = ["write_synthetic"]


def write_synthetic(output: str | Path, runs: int = 1400, modules: int = 48,
                    resolution: int = 64, seed: int = 0, block_runs: int = 4,
                    test_runs: int = 0) -> Path:
    """Write ``runs`` synthetic runs (``modules`` x 15 x ``resolution``^2 float32 images) to
    ``output``; the last ``test_runs`` runs are marked as the official test split."""
    check_resolution(resolution)
    if runs < 1 or modules < 1 or not 0 <= test_runs < runs:
        raise ValueError("need runs >= 1, modules >= 1 and 0 <= test_runs < runs")
    rng = np.random.default_rng(seed)
    axis = np.arange(resolution, dtype=np.float32)
    attrs = {"source": "clarm.synthetic (Gaussian blobs, not physics)", "modules": modules,
             "resolution": resolution,
             "projection_names": [f"channel_{c}" for c in range(NUM_PROJECTIONS)],
             "dataset_id": f"synthetic:{runs}x{modules}x{resolution}:{seed}"}
    with H5Appender(output, PHASE_SPACE_SCHEMA, attrs=attrs, chunk_rows=1) as out:
        for lo in range(0, runs, block_runs):
            hi = min(runs, lo + block_runs)
            shape = (hi - lo, modules, NUM_PROJECTIONS)
            centre = rng.uniform(0.3, 0.7, (*shape, 2)) * resolution
            width = rng.uniform(0.03, 0.12, (*shape, 2)) * resolution
            prof = np.exp(-0.5 * ((axis - centre[..., None]) / width[..., None]) ** 2)
            prof /= prof.sum(-1, keepdims=True)
            images = (prof[..., 0, :, None] * prof[..., 1, None, :]).astype(np.float32)
            out.append({"images": images,
                        "split": (np.arange(lo, hi) >= runs - test_runs).astype(np.int8),
                        "run_index": np.arange(lo, hi, dtype=np.int64)})
    return Path(output)
