"""The ``beamenv`` command line: info, rollout, scan, plot, bad input."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from beamenv.cli import cli


def test_info_reports_backend_and_machine() -> None:
    res = CliRunner().invoke(cli, ["info"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["backend"]["name"] in ("cpp", "numpy")
    assert data["ring"]["circumference_m"] > 157
    assert "beamenv/PSBPhaseCycle-v0" in data["env_ids"]


def test_rollout_and_scan_tiny(tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.json"
    res = runner.invoke(cli, ["rollout", "--policy", "random", "--steps", "2", "-n", "1",
                              "--intensity", "0", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert len(data["first_episode"]["reward"]) == 2
    res = runner.invoke(cli, ["scan", "--phases", "4", "--steps", "2", "--intensity", "0"])
    assert res.exit_code == 0, res.output
    scan = json.loads(res.output[res.output.index("{"):])
    assert len(scan["phi2_rad"]) == 2
    assert scan["total_reward"] == sum(scan["rewards"])


def test_plot_writes_png(tmp_path) -> None:
    out = tmp_path / "p.png"
    res = CliRunner().invoke(cli, ["plot", "--steps", "2", "--intensity", "0", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_trace_of_an_evaluated_episode(tmp_path) -> None:
    trace = tmp_path / "eval.json"
    rng = np.random.default_rng(0)
    trace.write_text(json.dumps([{"policy": "scan", "trace": {
        "policy": "scan", "return": -1.5, "profiles": rng.random((31, 64)).tolist(),
        "abs_phase_error_rad": np.linspace(2.0, 0.0, 31).tolist()}}]))
    out = tmp_path / "ep.png"
    res = CliRunner().invoke(cli, ["plot", "--trace", str(trace), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    res = CliRunner().invoke(cli, ["plot", "--trace", str(bad), "-o", str(out)])
    assert res.exit_code == 2 and res.output.strip().startswith("Error:")


def test_bad_input_is_one_line_exit_2(tmp_path) -> None:
    runner = CliRunner()
    for args in (["rollout", "--policy", "nope"], ["rollout", "--steps", "0"],
                 ["plot", "-o", str(tmp_path / "x.txt"), "--steps", "1"],
                 ["bench", "--presets", "ultra"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.strip().startswith("Error:") and res.output.strip().count("\n") == 0
