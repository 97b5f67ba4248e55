from __future__ import annotations

import numpy as np
import pytest

from calo.sim import SimConfig, simulate_showers


@pytest.fixture(scope="session")
def showers() -> dict[str, np.ndarray]:
    """2000 simulated positron showers, U(1, 100) GeV."""
    return simulate_showers(2000, SimConfig(seed=123))
