"""Shared fixtures: one tiny simulated file per test session (seconds on 2 CPU cores)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 runs x 3 modules, 32 x 32 images, 600 macroparticles, space charge on."""
    from clarm.sim import SimConfig, simulate

    path = tmp_path_factory.mktemp("clarm") / "tiny.h5"
    simulate(SimConfig(runs=6, modules=3, resolution=32, particles=600, batch_runs=6, seed=3),
             path, progress_bar=False)
    return path
