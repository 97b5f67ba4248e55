"""Shared fixtures: a tiny simulated Lorenz file, made once per test session."""

from __future__ import annotations

import pytest
import torch

from alternators.data import LorenzConfig, save_sequences, simulate_lorenz

TINY = LorenzConfig(n_train=8, n_val=2, n_test=2, n_steps=40, n_neurons=20, burn_in=100,
                    min_spikes=1, seed=3)


@pytest.fixture(scope="session")
def tiny_data():
    return simulate_lorenz(TINY)


@pytest.fixture(scope="session")
def tiny_file(tmp_path_factory, tiny_data):
    path = tmp_path_factory.mktemp("data") / "lorenz.h5"
    save_sequences(path, tiny_data)
    return path


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
