"""Shared fixtures: tiny fidelity so the whole suite stays fast on two cores."""

from __future__ import annotations

import pytest

TINY = {"preset": "fast", "n_macroparticles": 800, "n_slices": 32, "turns_per_step": 40,
        "n_snapshots": 2, "match_grid": 80, "name": "tiny"}


@pytest.fixture(autouse=True, scope="session")
def _scan_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep scanned optima out of the user's cache (the compiled backend stays shared)."""
    import beamenv.envs.correction as corr

    folder = tmp_path_factory.mktemp("scans")
    corr.scan_cache_dir = lambda: folder  # type: ignore[assignment]


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)
