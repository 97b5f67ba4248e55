"""The physml quickstart: every package's main job at small scale, one report at the end.

    uv run tools/quickstart.py                      # all packages, about 10 minutes on 2 cores
    uv run tools/quickstart.py --only calo,clarm --device cuda --out runs/qs
    uv run tools/quickstart.py --full               # the packages' real default recipes

Each package runs through its own command-line interface on its embedded simulator (the same
commands a user types), so the quickstart also proves the CLIs.  Logs of every step go to
``<out>/<package>/logs/``; the report with key figures and plots is ``<out>/report.html`` (and
``report.md``).  Exit status 1 if any package failed.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGES = ("calo", "clarm", "alternators", "beamenv", "lstm_td3")


@dataclass
class Step:
    """One CLI call: ``argv[0]`` is the console script of the package."""

    name: str
    argv: list[str]


@dataclass
class Job:
    package: str
    title: str
    steps: list[Step]
    figures: Callable[[Path], dict[str, Any]]
    images: Callable[[Path], list[Path]] = field(default=lambda d: sorted(d.rglob("*.png")))


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _scalars(data: Any, prefix: str = "", depth: int = 2) -> dict[str, Any]:
    """Numeric leaves of a JSON report down to ``depth`` levels, as ``a.b`` keys."""
    found: dict[str, Any] = {}
    if isinstance(data, dict) and depth > 0:
        for key, value in data.items():
            name = f"{prefix}{key}"
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[name] = value
            elif isinstance(value, dict):
                found.update(_scalars(value, f"{name}.", depth - 1))
    return found


def _pick(report: dict[str, Any], wanted: list[str], limit: int = 12) -> dict[str, Any]:
    """The figures of ``wanted``, in that order: a flattened key itself where one is named,
    otherwise every key that contains the pattern."""
    flat = _scalars(report, depth=4)
    picked: dict[str, Any] = {}
    for pattern in wanted:
        for key, value in flat.items():
            match = key == pattern if pattern in flat else pattern in key
            if match and key not in picked:
                picked[key] = value
                if len(picked) >= limit:
                    return picked
    return picked


# ------------------------------------------------------------------------------ the jobs

def calo_job(d: Path, full: bool, device: str) -> Job:
    n_train, n_eval = (100_000, 20_000) if full else (20_000, 5_000)
    train = ["calo", "train", "--model", "vae", "--data", str(d / "train.h5"),
             "--run-dir", str(d / "run_vae"), "--device", device]
    # The evaluation refuses a reference that shares rows with the checkpoint's training data;
    # each figure comes with its floor (the reference's second half against its first).
    evaluate = ["calo", "evaluate", "--reference", str(d / "reference.h5"), "--generated",
                str(d / "generated.h5"), "--checkpoint", str(d / "run_vae"), "-o", str(d / "eval")]
    if not full:
        train += ["--epochs", "6", "--max-minutes", "3"]
        evaluate += ["--classifier-seeds", "2", "--classifier-epochs", "5",
                     "--classifier-dtype", "float32", "--fpd-min-samples", "1000",
                     "--kpd-batch-size", "1000"]
    return Job(
        "calo", "Calorimeter showers: GFlash-style simulator -> CaloVAE -> physics evaluation",
        [
            Step("simulate training showers",
                 ["calo", "simulate", "-n", str(n_train), "-o", str(d / "train.h5"), "--seed", "1"]),
            Step("simulate held-out reference",
                 ["calo", "simulate", "-n", str(n_eval), "-o", str(d / "reference.h5"),
                  "--seed", "2"]),
            Step("train the VAE", train),
            Step("generate showers",
                 ["calo", "generate", "--checkpoint", str(d / "run_vae"), "-n", str(n_eval),
                  "--energy-file", str(d / "reference.h5"), "-o", str(d / "generated.h5"),
                  "--device", device]),
            Step("evaluate against the reference", evaluate),
        ],
        lambda d: _pick(_load(d / "eval" / "report.json"),
                        ["classifier_high_level.auc", "classifier_high_level.floor.auc",
                         "classifier_low_level.auc", "classifier_low_level.floor.auc",
                         "fpd_x1e3", "fpd_x1e3_floor", "mean_separation_power",
                         "mean_separation_power_floor", "empty_fraction_generated",
                         "empty_fraction_reference"]),
        lambda d: sorted((d / "eval").glob("*.png"))[:4],
    )


def clarm_job(d: Path, full: bool, device: str) -> Job:
    runs, res, particles = (200, 64, 10_000) if full else (20, 32, 2_000)
    cvae_epochs, lstm_epochs = (None, None) if full else ("15", "20")
    cvae = ["clarm", "train", "cvae", "--data", str(d / "linac.h5"), "--run-dir",
            str(d / "run_cvae"), "--device", device]
    lstm = ["clarm", "train", "lstm", "--data", str(d / "linac.h5"), "--cvae",
            str(d / "run_cvae"), "--run-dir", str(d / "run_lstm"), "--device", device]
    if cvae_epochs:
        cvae += ["--epochs", cvae_epochs]
        lstm += ["--epochs", lstm_epochs]
    return Job(
        "clarm", "Linac phase space: cheetah simulation -> CVAE + latent LSTM -> forecast",
        [
            Step("simulate linac runs",
                 ["clarm", "simulate", "--runs", str(runs), "--modules", "12", "--resolution",
                  str(res), "--particles", str(particles), "-o", str(d / "linac.h5")]),
            Step("train the CVAE", cvae),
            Step("train the latent LSTM", lstm),
            Step("forecast from 4 observed modules",
                 ["clarm", "forecast", "--data", str(d / "linac.h5"), "--cvae",
                  str(d / "run_cvae"), "--lstm", str(d / "run_lstm"), "--observed", "4",
                  "-o", str(d / "forecast.h5"), "--device", device]),
            Step("evaluate on held-out runs",
                 ["clarm", "evaluate", "--data", str(d / "linac.h5"), "--cvae",
                  str(d / "run_cvae"), "--lstm", str(d / "run_lstm"), "--observed", "4",
                  "-o", str(d / "eval"), "--device", device]),
        ],
        lambda d: _pick(_load(d / "eval" / "report.json"),
                        ["forecast.ssim.mean", "baseline_module_mean_forecast_modules.ssim.mean",
                         "baseline_persistence.ssim.mean", "forecast.ssim_paper.e_phi",
                         "baseline_persistence.ssim_paper.e_phi", "reconstruction.ssim.mean",
                         "forecast_uncertainty.coverage", "generation_prior.frechet_distance"]),
        lambda d: sorted((d / "eval").glob("*.png"))[:4],
    )


def _alternators_figures(d: Path) -> dict[str, Any]:
    """Decoding CC/MAE and 50-step forecast MAE of every model, from evaluation.json."""
    figures: dict[str, Any] = {}
    for model in _load(d / "eval" / "evaluation.json")["models"]:
        name = model["model"]
        figures[f"{name} latent CC"] = model["decoding"]["cc"]
        figures[f"{name} latent MAE"] = model["decoding"]["mae"]
        figures[f"{name} forecast latent MAE"] = model["forecast"]["latent"]["mae"]
    return figures


def alternators_job(d: Path, full: bool, device: str) -> Job:
    sim = ["alternators", "simulate", "lorenz", "-o", str(d / "lorenz.h5")]
    if not full:
        sim += ["--n-train", "48", "--n-val", "8", "--n-test", "8", "--steps", "200"]
    steps = [Step("simulate Lorenz spiking data", sim)]
    for model in ("alternator", "vrnn", "rnn"):
        train = ["alternators", "train", "--model", model, "--data", str(d / "lorenz.h5"),
                 "--run-dir", str(d / f"run_{model}"), "--device", device]
        if not full:
            train += ["--epochs", "12"]
        steps.append(Step(f"train {model}", train))
    evaluate = ["alternators", "evaluate", "--data", str(d / "lorenz.h5"),
                "--checkpoint", str(d / "run_alternator"), "--checkpoint", str(d / "run_vrnn"),
                "--checkpoint", str(d / "run_rnn"), "-o", str(d / "eval"), "--device", device]
    if not full:
        evaluate += ["--samples", "4"]
    steps.append(Step("evaluate all three on held-out trajectories", evaluate))
    return Job(
        "alternators", "Lorenz latents from spikes: Alternator vs VRNN vs GRU",
        steps,
        _alternators_figures,
        lambda d: sorted((d / "eval").glob("*.png"))[:4],
    )


def beamenv_job(d: Path, full: bool, device: str) -> Job:
    fidelity = "high" if full else "fast"
    phases = "16" if full else "8"
    return Job(
        "beamenv", "PS Booster double-harmonic RF on BLonD: the Phi_2 scan baseline",
        [
            Step("scan Phi_2 along the cycle",
                 ["beamenv", "scan", "--fidelity", fidelity, "--phases", phases,
                  "-o", str(d / "scan.json")]),
            Step("roll out the fixed Phi_2 = pi policy (zero action) for comparison",
                 ["beamenv", "rollout", "--policy", "zero", "--fidelity", fidelity,
                  "-o", str(d / "zero.json")]),
            Step("plot profiles along the cycle",
                 ["beamenv", "plot", "--fidelity", fidelity, "-o", str(d / "profiles.png")]),
        ],
        lambda d: {
            "scan total reward": _load(d / "scan.json")["total_reward"],
            **{f"fixed-pi policy {k}": v for k, v in _pick(_load(d / "zero.json"),
                                                        ["return"], limit=2).items()},
        },
        lambda d: [d / "profiles.png"],
    )


def lstm_td3_job(d: Path, full: bool, device: str) -> Job:
    total = "50000" if full else "2000"
    train = ["lstm-td3", "train", "--env", "Pendulum-v1", "--pomdp", "remove_velocity",
             "--hist-len", "5", "--total-steps", total, "--run-dir", str(d / "run"),
             "--device", device]
    if not full:
        train += ["--steps-per-epoch", "1000", "--start-steps", "500", "--update-after", "500",
                  "--test-episodes", "2"]
    return Job(
        "lstm_td3", "LSTM-TD3 on Pendulum-v1 with velocities removed (a POMDP)",
        [
            Step("train", train),
            Step("evaluate the policy",
                 ["lstm-td3", "evaluate", "--checkpoint", str(d / "run"), "--episodes", "3",
                  "-o", str(d / "eval.json"), "--device", device]),
            Step("plot the learning curve",
                 ["lstm-td3", "plot", str(d / "run"), "-o", str(d / "learning_curve.png")]),
        ],
        lambda d: _pick(_load(d / "eval.json"), ["return", "length"]),
        lambda d: [d / "learning_curve.png"],
    )


JOBS: dict[str, Callable[[Path, bool, str], Job]] = {
    "calo": calo_job,
    "clarm": clarm_job,
    "alternators": alternators_job,
    "beamenv": beamenv_job,
    "lstm_td3": lstm_td3_job,
}


# ----------------------------------------------------------------------------- running

def _script(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"Error: command '{name}' not found; run 'uv sync --all-packages' first")
    return found


def run_job(job: Job, folder: Path) -> dict[str, Any]:
    logs = folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"package": job.package, "title": job.title, "ok": True,
                              "steps": [], "figures": {}, "images": []}
    start = time.perf_counter()
    for index, step in enumerate(job.steps, 1):
        log = logs / f"{index:02d}_{step.argv[0]}_{step.argv[1]}.log"
        print(f"[{job.package}] {index}/{len(job.steps)} {step.name} ...", flush=True)
        t0 = time.perf_counter()
        with open(log, "w") as handle:
            handle.write("$ " + " ".join(step.argv) + "\n")
            handle.flush()
            proc = subprocess.run([_script(step.argv[0]), *step.argv[1:]], stdout=handle,
                                  stderr=subprocess.STDOUT, env=dict(os.environ))
        seconds = time.perf_counter() - t0
        result["steps"].append({"name": step.name, "seconds": round(seconds, 1),
                                "rc": proc.returncode, "log": str(log)})
        if proc.returncode != 0:
            tail = log.read_text().strip().splitlines()[-5:]
            print(f"[{job.package}]    FAILED (exit {proc.returncode}) after {seconds:.1f} s; "
                  f"log {log}", flush=True)
            for line in tail:
                print(f"[{job.package}]    | {line}", flush=True)
            result["ok"] = False
            break
        print(f"[{job.package}]    done in {seconds:.1f} s", flush=True)
    if result["ok"]:
        try:
            result["figures"] = job.figures(folder)
            result["images"] = [str(p) for p in job.images(folder) if p.exists()]
        except (OSError, ValueError, KeyError) as exc:
            result["ok"] = False
            result["error"] = f"reading the results failed: {exc}"
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def write_report(results: list[dict[str, Any]], out: Path, args: argparse.Namespace) -> Path:
    mode = "full recipes" if args.full else "quick (small scale)"
    md = ["# physml quickstart report\n", f"Mode: {mode}; device: {args.device}.\n",
          "| package | status | time (s) |", "| --- | --- | --- |"]
    md += [f"| {r['package']} | {'ok' if r['ok'] else 'FAILED'} | {r['seconds']} |"
           for r in results]
    parts = [f"<h1>physml quickstart report</h1><p>Mode: {html.escape(mode)}; device: "
             f"{html.escape(args.device)}.</p><table border=1 cellpadding=4>"
             "<tr><th>package</th><th>status</th><th>time (s)</th></tr>"]
    parts += [f"<tr><td>{r['package']}</td><td>{'ok' if r['ok'] else 'FAILED'}</td>"
              f"<td>{r['seconds']}</td></tr>" for r in results]
    parts.append("</table>")
    for r in results:
        md.append(f"\n## {r['package']}: {r['title']}\n")
        parts.append(f"<h2>{html.escape(r['package'])}: {html.escape(r['title'])}</h2>")
        steps = ", ".join(f"{s['name']} {s['seconds']} s" for s in r["steps"])
        md.append(f"Steps: {steps}.\n")
        parts.append(f"<p>Steps: {html.escape(steps)}.</p>")
        if r.get("error"):
            md.append(f"Error: {r['error']}\n")
            parts.append(f"<p><b>Error:</b> {html.escape(r['error'])}</p>")
        if r["figures"]:
            md += ["| figure | value |", "| --- | --- |"]
            md += [f"| {k} | {_fmt(v)} |" for k, v in r["figures"].items()]
            parts.append("<table border=1 cellpadding=3>" + "".join(
                f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>"
                for k, v in r["figures"].items()) + "</table>")
        for image in r["images"]:
            rel = os.path.relpath(image, out)
            md.append(f"\n![{Path(image).name}]({rel})")
            parts.append(f'<p><img src="{html.escape(rel)}" style="max-width:900px"><br>'
                         f"{html.escape(Path(image).name)}</p>")
    (out / "report.md").write_text("\n".join(md) + "\n")
    page = out / "report.html"
    page.write_text("<!doctype html><meta charset=utf-8><title>physml quickstart</title>"
                    "<body style='font-family:sans-serif'>" + "\n".join(parts) + "</body>")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="physml quickstart: every package's main job.")
    parser.add_argument("--only", default=",".join(PACKAGES),
                        help=f"comma-separated subset of {','.join(PACKAGES)}")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"),
                        help="output folder (default: runs/quickstart)")
    parser.add_argument("--full", action="store_true",
                        help="run the packages' real default recipes (hours on a CPU)")
    args = parser.parse_args(argv)
    chosen = [p.strip().replace("-", "_") for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PACKAGES))
    if unknown or not chosen:
        print(f"Error: unknown package(s) {unknown} in --only; choose from "
              f"{','.join(PACKAGES)}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"physml quickstart -> {out} ({'full' if args.full else 'quick'} mode)", flush=True)
    results = []
    for package in chosen:
        folder = out / package
        folder.mkdir(parents=True, exist_ok=True)
        results.append(run_job(JOBS[package](folder, args.full, args.device), folder))
    page = write_report(results, out, args)
    width = max(len(k) for r in results for k in [*r["figures"], "package"])
    print("\nSummary")
    for r in results:
        status = "ok" if r["ok"] else "FAILED"
        print(f"  {r['package']:<12} {status:<7} {r['seconds']:>7.1f} s")
        for key, value in r["figures"].items():
            print(f"      {key:<{width}}  {_fmt(value)}")
    print(f"\nReport: {page}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
