"""The wheel check: every package builds, and the generative packages install alone."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_wheels.py"


def _has_uv() -> bool:
    return shutil.which("uv") is not None or importlib.util.find_spec("uv") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _has_uv(), reason="uv is needed to build wheels")
def test_generative_packages_install_alone_from_wheels(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("check_wheels", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_wheels"] = module
    spec.loader.exec_module(module)
    code = module.main(["clarm", "calo", "alternators", "--keep", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["wheels"]) == sorted([
        "alternators-0.1.0-py3-none-any.whl", "beamenv-0.1.0-py3-none-any.whl",
        "calo-0.1.0-py3-none-any.whl", "clarm-0.1.0-py3-none-any.whl",
        "lstm_td3-0.1.0-py3-none-any.whl", "physml_core-0.1.0-py3-none-any.whl"])
    for check in report["checks"]:
        assert check["forbidden_present"] == [], check
        assert all(s["rc"] == 0 for s in check["smoke"]), check
        assert len(check["smoke"]) == 4, check  # --help, --version, simulate, train
    assert code == 0
