"""Cross-package conventions: CLIs, checkpoints refused across packages, shared HDF5 I/O."""

from __future__ import annotations

import importlib

import pytest
import torch
from click.testing import CliRunner

from physml_core import H5Reader, save_checkpoint, validate_file

CLIS = {
    "calo": "calo.cli",
    "clarm": "clarm.cli",
    "alternators": "alternators.cli",
    "beamenv": "beamenv.cli",
    "lstm-td3": "lstm_td3.cli",
}


def _cli(name: str):
    return importlib.import_module(CLIS[name]).cli


@pytest.mark.parametrize("name", sorted(CLIS))
def test_every_cli_answers_help_and_version(name):
    runner = CliRunner()
    result = runner.invoke(_cli(name), ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--version" in result.output
    result = runner.invoke(_cli(name), ["--version"])
    assert result.exit_code == 0 and "0.1.0" in result.output


def _foreign_checkpoint(tmp_path, package: str):
    return save_checkpoint(tmp_path / f"{package}.pt", package=package, model_name="x",
                           model=torch.nn.Linear(2, 2), step=1)


@pytest.mark.parametrize(
    ("cli", "owner", "args"),
    [
        ("clarm", "calo", ["generate", "--module", "0", "-n", "2", "-o", "{tmp}/g.h5",
                           "--checkpoint", "{ckpt}"]),
        ("calo", "clarm", ["generate", "-n", "2", "-o", "{tmp}/g.h5", "--checkpoint", "{ckpt}"]),
        ("alternators", "lstm_td3", ["sample", "--checkpoint", "{ckpt}", "-o", "{tmp}/s.h5"]),
        ("lstm-td3", "alternators", ["evaluate", "--checkpoint", "{ckpt}", "--episodes", "1"]),
    ],
)
def test_checkpoint_of_another_package_is_refused(tmp_path, cli, owner, args):
    ckpt = _foreign_checkpoint(tmp_path, owner)
    args = [a.format(tmp=tmp_path, ckpt=ckpt) for a in args]
    result = CliRunner().invoke(_cli(cli), args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert f"belongs to package '{owner}'" in lines[0]
    assert "Traceback" not in result.output


def test_calo_output_round_trips_through_core_reader(tmp_path):
    from calo import CALO_SCHEMA

    out = tmp_path / "showers.h5"
    result = CliRunner().invoke(_cli("calo"), ["simulate", "-n", "64", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert validate_file(out, CALO_SCHEMA) == 64
    with H5Reader(out, CALO_SCHEMA) as reader:
        assert reader.dataset_attrs("energy")["unit"] == "GeV"
        assert reader.dataset_attrs("layer_0")["unit"] == "MeV"
        batch = next(reader.iter_batches(32))
        assert batch["layer_0"].shape == (32, 3, 96) and (batch["layer_0"] >= 0).all()


def test_clarm_output_round_trips_through_core_reader(tmp_path):
    from clarm.data import PHASE_SPACE_SCHEMA

    out = tmp_path / "linac.h5"
    result = CliRunner().invoke(_cli("clarm"), [
        "simulate", "--runs", "2", "--modules", "3", "--resolution", "32", "--particles", "200",
        "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert validate_file(out, PHASE_SPACE_SCHEMA) == 2
    with H5Reader(out, PHASE_SPACE_SCHEMA) as reader:
        assert reader.shape("images") == (2, 3, 15, 32, 32)
        images = reader.read("images", 0, 1)
        assert images.min() >= 0 and images.sum() > 0
