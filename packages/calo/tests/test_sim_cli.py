"""``calo simulate --noise-mev``: the option reaches the simulator and is recorded in the file."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from calo.cli import cli
from calo.data import CALO_SCHEMA, read_showers
from physml_core.hdf5 import H5Reader


def test_simulate_noise_option(tmp_path):
    runner = CliRunner()
    for name, extra in (("clean.h5", []), ("noisy.h5", ["--noise-mev", "0.25"])):
        result = runner.invoke(cli, ["simulate", "-n", "200", "-o", str(tmp_path / name),
                                     "--seed", "3", *extra])
        assert result.exit_code == 0, result.output
    with H5Reader(tmp_path / "noisy.h5", CALO_SCHEMA) as reader:
        assert reader.attrs["sim_config"]["noise_mev"] == 0.25
    clean, noisy = read_showers(tmp_path / "clean.h5"), read_showers(tmp_path / "noisy.h5")
    big = clean["layer_1"] > 20.0
    diff = (noisy["layer_1"] - clean["layer_1"])[big].astype(np.float64)
    assert 0.22 < diff.std() < 0.28  # the stated 0.25 MeV, on cells far above zero


def test_simulate_rejects_negative_noise(tmp_path):
    result = CliRunner().invoke(cli, ["simulate", "-n", "10", "-o", str(tmp_path / "x.h5"),
                                      "--noise-mev", "-1"])
    assert result.exit_code == 2
    text = (getattr(result, "stderr", "") or result.output).strip()
    assert "noise-mev" in text and "Traceback" not in text
