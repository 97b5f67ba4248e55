"""The ``beamenv`` command line: info, rollout, scan, plot, bad input."""

from __future__ import annotations

import json

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


def test_bad_input_is_one_line_exit_2(tmp_path) -> None:
    runner = CliRunner()
    for args in (["rollout", "--policy", "nope"], ["rollout", "--steps", "0"],
                 ["plot", "-o", str(tmp_path / "x.txt"), "--steps", "1"],
                 ["bench", "--presets", "ultra"]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.strip().startswith("Error:") and res.output.strip().count("\n") == 0
