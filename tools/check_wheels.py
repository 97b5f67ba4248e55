"""Build every wheel of the workspace and prove that one package installs alone.

    uv run tools/check_wheels.py clarm            # build, install clarm alone, smoke-test it
    uv run tools/check_wheels.py clarm calo alternators --json

For each package: a fresh virtual environment gets ``<package>`` from the built wheels (the
project's packages from the wheel folder, third-party ones from the registry), then the check
runs ``<cli> --help``, ``<cli> --version`` and a tiny simulate -> train job, and verifies that none of the packages it must not
pull in (by default the RL side: gymnasium, pybullet, blond) were installed.  Prints a JSON
report; exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: console script of each distribution
CLI = {"physml-core": None, "calo": "calo", "clarm": "clarm", "alternators": "alternators",
       "beamenv": "beamenv", "lstm-td3": "lstm-td3"}
#: what the generative packages must never pull in
RL_SIDE = ("gymnasium", "pybullet", "pybullet-envs-gymnasium", "blond")
FORBIDDEN = {"calo": RL_SIDE, "clarm": RL_SIDE, "alternators": RL_SIDE, "physml-core": RL_SIDE}
#: a tiny simulate -> train run in the lone environment ({tmp} is a scratch folder); clarm's
#: without space charge (cheetah's 3D Poisson solve costs 20 s here and is tested in the suite)
SMOKE = {
    "clarm": [
        ["clarm", "simulate", "--runs", "3", "--modules", "3", "--resolution", "32",
         "--particles", "200", "--no-space-charge", "-o", "{tmp}/linac.h5"],
        ["clarm", "train", "cvae", "--data", "{tmp}/linac.h5", "--epochs", "1",
         "--run-dir", "{tmp}/run"],
    ],
    "calo": [
        ["calo", "simulate", "-n", "200", "-o", "{tmp}/showers.h5"],
        ["calo", "train", "--model", "vae", "--data", "{tmp}/showers.h5", "--epochs", "1",
         "--run-dir", "{tmp}/run"],
    ],
    "alternators": [
        ["alternators", "simulate", "lorenz", "-o", "{tmp}/lorenz.h5", "--n-train", "4",
         "--n-val", "1", "--n-test", "1", "--steps", "30"],
        ["alternators", "train", "--model", "alternator", "--data", "{tmp}/lorenz.h5",
         "--epochs", "1", "--run-dir", "{tmp}/run"],
    ],
}


def _uv() -> list[str]:
    exe = shutil.which("uv")
    return [exe] if exe else [sys.executable, "-m", "uv"]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def build_wheels(dist: Path) -> list[str]:
    out = _run([*_uv(), "build", "--all-packages", "--wheel", "-o", str(dist)], cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"uv build failed:\n{out.stderr[-3000:]}")
    return sorted(p.name for p in dist.glob("*.whl"))


def check_package(package: str, dist: Path, workdir: Path) -> dict:
    venv = workdir / f"venv-{package}"
    report: dict = {"package": package, "ok": False}
    start = time.perf_counter()
    out = _run([*_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)])
    if out.returncode != 0:
        report["error"] = f"venv: {out.stderr.strip()[-500:]}"
        return report
    python = venv / "bin" / "python"
    env = dict(os.environ, VIRTUAL_ENV=str(venv))
    env.pop("UV_PROJECT_ENVIRONMENT", None)
    # the project's packages only from the wheel folder, never from the registry
    out = _run([*_uv(), "pip", "install", "--python", str(python), "--find-links", str(dist),
                "--no-sources", package], env=env)
    report["install_s"] = round(time.perf_counter() - start, 1)
    if out.returncode != 0:
        report["error"] = f"install: {out.stderr.strip()[-1500:]}"
        return report
    listed = _run([*_uv(), "pip", "list", "--python", str(python), "--format", "json"], env=env)
    installed = {item["name"].lower().replace("_", "-") for item in json.loads(listed.stdout)}
    report["installed_count"] = len(installed)
    forbidden = sorted(set(FORBIDDEN.get(package, ())) & installed)
    report["forbidden_present"] = forbidden
    cli = CLI.get(package)
    smoke = []
    if cli is not None:
        scratch = workdir / f"smoke-{package}"
        scratch.mkdir(exist_ok=True)
        calls = [[cli, "--help"], [cli, "--version"]]
        calls += [[a.format(tmp=scratch) for a in call] for call in SMOKE.get(package, [])]
        for call in calls:
            res = _run([str(venv / "bin" / call[0]), *call[1:]], env=env, timeout=600,
                       cwd=scratch)
            entry = {"args": call[1:], "rc": res.returncode,
                     "first_line": (res.stdout.strip().splitlines() or [""])[0]}
            if res.returncode != 0:
                entry["stderr"] = res.stderr.strip()[-1000:]
            smoke.append(entry)
            if res.returncode != 0:
                break
    else:
        module = package.replace("-", "_")
        res = _run([str(python), "-c", f"import {module}; print({module}.__version__)"], env=env)
        smoke.append({"args": ["import"], "rc": res.returncode, "first_line": res.stdout.strip()})
    report["smoke"] = smoke
    report["ok"] = not forbidden and all(s["rc"] == 0 for s in smoke)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=["clarm"],
                        help="distributions to install alone (default: clarm)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep wheels and venvs in this folder instead of a temp folder")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.packages) - set(CLI))
    if unknown:
        print(f"Error: unknown package(s) {unknown}; choose from {sorted(CLI)}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="physml-wheels-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        dist = workdir / "dist"
        wheels = build_wheels(dist)
        # the packages' checks are independent (own venv, own scratch folder): run them side
        # by side; most of their time is starting Python and torch in fresh environments
        with ThreadPoolExecutor(max_workers=len(args.packages)) as pool:
            reports = list(pool.map(lambda p: check_package(p, dist, workdir), args.packages))
    result = {"wheels": wheels, "checks": reports, "ok": all(r["ok"] for r in reports)}
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
