"""``clarm`` command line: a thin click layer over the library functions.

The options of ``clarm train cvae`` and ``clarm train lstm`` are generated from their config
dataclasses (:mod:`clarm.config`); the shared names come from physml-core's one table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np

from physml_core.cli import (
    checkpoint_option,
    data_option,
    device_option,
    make_group,
    num_option,
    output_option,
    seed_option,
    shard_option,
)
from physml_core.options import config_from_cli, options_from

from .config import UNCERTAINTY_METHODS, CVAETrainConfig, LSTMTrainConfig

__all__ = ["main"]

cli = make_group("clarm", help="CLARM: simulate, learn, generate and forecast beam phase space "
                               "along a proton linac (CVAE + latent LSTM).")


def _resolution(ctx: click.Context, param: click.Parameter, value: int) -> int:
    from .data import check_resolution

    try:
        return check_resolution(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@click.option("--runs", type=click.IntRange(1), default=16, show_default=True,
              help="Number of linac runs (each with its own settings).")
@click.option("--modules", type=click.IntRange(1, 64), default=12, show_default=True)
@click.option("--resolution", type=int, default=64, show_default=True, callback=_resolution,
              help="Image size H = W (power of two, 32..256).")
@click.option("--particles", type=click.IntRange(100), default=10_000, show_default=True)
@click.option("--space-charge/--no-space-charge", default=True, show_default=True)
@click.option("--batch-runs", type=click.IntRange(1), default=8, show_default=True)
@seed_option()
@shard_option()
@output_option()
def simulate(runs: int, modules: int, resolution: int, particles: int, space_charge: bool,
             batch_runs: int, seed: int, shard: tuple[int, int], output: Path) -> None:
    """Simulate linac runs (cheetah tracking, space charge) into an HDF5 phase-space file."""
    from .sim import SimConfig
    from .sim import simulate as run

    cfg = SimConfig(runs=runs, modules=modules, resolution=resolution, particles=particles,
                    space_charge=space_charge, batch_runs=batch_runs, seed=seed)
    run(cfg, output, shard=shard)
    click.echo(str(output))


@cli.command()
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@output_option()
def merge(inputs: tuple[Path, ...], output: Path) -> None:
    """Merge shard files of one simulation into one file."""
    from .sim import merge_shards

    rows = merge_shards(list(inputs), output)
    click.echo(f"{output}: {rows} runs")


@cli.command()
@click.option("--images", "images", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Public CLARM images .npy, shape (runs, modules, 15, H, H).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Matching labels .npy, (runs, ...).")
@click.option("--resolution", type=int, default=None, help="Block-sum images down to this size.")
@output_option()
def convert(images: Path, labels: Path | None, resolution: int | None, output: Path) -> None:
    """Stream public .npy arrays (memory-mapped) into the HDF5 format."""
    from .data import convert_npy

    convert_npy(images, output, labels_npy=labels, resolution=resolution)
    click.echo(str(output))


@cli.command("import-zenodo")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--resolution", type=int, default=None,
              help="Block-sum the 256 x 256 images down to this size (e.g. 64).")
@click.option("--test-file", default=None,
              help="Name of the images/ file that is the official test split (default: the "
                   "last in sorted order, as in the reference code).")
@output_option()
def import_zenodo_cmd(folder: Path, resolution: int | None, test_file: str | None,
                      output: Path) -> None:
    """Convert the public CLARM data (FOLDER with images/ and labels/) into one HDF5 file."""
    from .data import PhaseSpaceFile, import_zenodo

    import_zenodo(folder, output, resolution=resolution, test_file=test_file)
    with PhaseSpaceFile(output) as f:
        split = f.split()
        n_test = int((split == 1).sum()) if split is not None else 0
        click.echo(f"{output}: {f.runs} runs ({n_test} official test)")


@cli.command("synthetic")
@click.option("--runs", type=click.IntRange(1), default=1400, show_default=True)
@click.option("--modules", type=click.IntRange(1), default=48, show_default=True)
@click.option("--resolution", type=int, default=64, show_default=True, callback=_resolution)
@click.option("--test-runs", type=click.IntRange(0), default=0, show_default=True)
@seed_option()
@output_option()
def synthetic(runs: int, modules: int, resolution: int, test_runs: int, seed: int,
              output: Path) -> None:
    """Write a synthetic file of any size (default: the Zenodo size at 64 x 64) for
    streaming benchmarks; the images are Gaussian blobs, not physics."""
    from .synthetic import write_synthetic

    write_synthetic(output, runs=runs, modules=modules, resolution=resolution, seed=seed,
                    test_runs=test_runs)
    click.echo(str(output))


@cli.group()
def train() -> None:
    """Train the CVAE or the latent LSTM."""


@train.command("cvae")
@options_from(CVAETrainConfig)
@click.pass_context
def train_cvae_cmd(ctx: click.Context, **values: object) -> None:
    """Train the conditional VAE on a phase-space file (a step is one epoch; the same command
    resumes; torchrun --nproc-per-node N --no-python clarm train cvae ... runs data-parallel)."""
    from .train import train_cvae

    result = train_cvae(config_from_cli(CVAETrainConfig, values, ctx))
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        click.echo(str(result.run_dir))


@train.command("lstm")
@options_from(LSTMTrainConfig)
@click.pass_context
def train_lstm_cmd(ctx: click.Context, **values: object) -> None:
    """Train the latent LSTM on latent sequences of the CVAE's training runs (a step is one
    epoch; the same command resumes; runs under torchrun like train cvae)."""
    from .train import train_lstm

    result = train_lstm(config_from_cli(LSTMTrainConfig, values, ctx))
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        click.echo(str(result.run_dir))


@cli.command()
@checkpoint_option()
@click.option("--module", "module", type=int, required=True, help="Module index (0-based).")
@num_option(default=16)
@click.option("--method", type=click.Choice(["prior", "box"]), default="prior",
              show_default=True, help="Conditional prior, or the reference's min/max box.")
@seed_option()
@device_option()
@output_option()
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a PNG grid of the first samples.")
def generate(checkpoint: Path, module: int, num: int, method: str, seed: int, device: str,
             output: Path, plot: Path | None) -> None:
    """Sample N phase-space images (15 projections) for one module."""
    from .artifacts import load_cvae
    from .generate import generate as gen
    from .generate import write_generated

    cvae = load_cvae(checkpoint, device=device)
    images = gen(cvae, module, num, method=method, seed=seed)
    write_generated(output, images, np.full(num, module, dtype=np.int64), method,
                    str(cvae.path))
    if plot is not None:
        from .plots import plot_grid

        plot_grid(plot, {f"sample {i}": images[i] for i in range(min(4, num))},
                  [str(c) for c in range(15)], title=f"module {module} ({method})")
    click.echo(str(output))


@cli.command()
@data_option()
@click.option("--cvae", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--lstm", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--run", "runs", type=int, multiple=True,
              help="Run index to forecast (repeatable); default: the held-out runs.")
@click.option("--observed", type=click.IntRange(1), default=4, show_default=True,
              help="Number of observed upstream modules.")
@device_option()
@output_option()
def forecast(data: Path, cvae: Path, lstm: Path, runs: tuple[int, ...], observed: int,
             device: str, output: Path) -> None:
    """Observe the first modules of runs and predict the phase space downstream."""
    from .artifacts import load_cvae, load_lstm
    from .forecast import forecast_file

    forecast_file(data, load_cvae(cvae, device=device), load_lstm(lstm, device=device), output,
                  observed=observed, runs=list(runs) or None)
    click.echo(str(output))


@cli.command()
@data_option()
@click.option("--cvae", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--lstm", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--observed", type=click.IntRange(1), default=4, show_default=True)
@num_option(default=None, help="Generated samples per module (default: as many as "
                               "held-out runs, so both sets have equal size).")
@click.option("--classifier-epochs", type=click.IntRange(1), default=4, show_default=True)
@click.option("--forecast-samples", type=click.IntRange(0), default=16, show_default=True,
              help="Rollouts per run of the residual uncertainty methods; 0: none.")
@click.option("--uncertainty", type=click.Choice(UNCERTAINTY_METHODS), default="conformal",
              show_default=True,
              help="Forecast intervals: conformal (from the LSTM's calibration runs), "
                   "calibration-residuals, train-residuals (the noise scale before "
                   "2026-12-02) or none.")
@click.option("--block-images", type=click.IntRange(1), default=96, show_default=True,
              help="(run, module) images read at a time (at least one whole run).")
@click.option("--compare-cvae", type=click.Path(exists=True, path_type=Path), default=None,
              help="A second CVAE trained on the same runs (e.g. --no-cond-decoder --prior "
                   "standard) to compare reconstruction and generation with.")
@seed_option()
@device_option()
@output_option(default="clarm-eval", help="Folder for report.json and PNG plots.")
def evaluate(data: Path, cvae: Path, lstm: Path | None, observed: int, num: int | None,
             classifier_epochs: int, forecast_samples: int, uncertainty: str,
             block_images: int, compare_cvae: Path | None, seed: int, device: str,
             output: Path) -> None:
    """Evaluate reconstruction, generation and forecasting on held-out runs."""
    from .evaluate import EvalConfig
    from .evaluate import evaluate as run

    report = run(EvalConfig(data=str(data), cvae=str(cvae),
                            lstm=None if lstm is None else str(lstm),
                            output=str(output), observed=observed, num_per_module=num or 0,
                            classifier_epochs=classifier_epochs,
                            compare_cvae=None if compare_cvae is None else str(compare_cvae),
                            forecast_samples=forecast_samples, uncertainty=uncertainty,
                            block_images=block_images, seed=seed, device=device))
    short = {"reconstruction_ssim": report["reconstruction"]["ssim"]["mean"],
             "reconstruction_ssim_paper_e_phi": report["reconstruction"]["ssim_paper"]["e_phi"],
             "baseline_module_mean_ssim": report["baseline_module_mean"]["ssim"]["mean"]}
    if "forecast" in report:
        for key in ("forecast", "baseline_module_mean_forecast_modules", "baseline_persistence"):
            short[f"{key}_ssim"] = report[key]["ssim"]["mean"]
            short[f"{key}_ssim_paper_e_phi"] = report[key]["ssim_paper"]["e_phi"]
        if "forecast_uncertainty" in report:
            short["forecast_coverage_90"] = report["forecast_uncertainty"]["coverage"]
    for key in ("generation_prior", "generation_box"):
        if key in report:
            short[f"{key}_frechet"] = report[key]["frechet_distance"]["mean"]
            short[f"{key}_recall"] = report[key]["recall"]["mean"]
    click.echo(json.dumps(short))


@cli.command()
@click.option("--modules", type=click.IntRange(1, 64), default=12, show_default=True)
@click.option("--resolution", type=int, default=64, show_default=True, callback=_resolution)
@click.option("--sim-runs", type=click.IntRange(1), default=4, show_default=True)
@click.option("--particles", type=click.IntRange(100), default=10_000, show_default=True)
@click.option("--observed", type=click.IntRange(1), default=4, show_default=True)
@seed_option()
def bench(modules: int, resolution: int, sim_runs: int, particles: int, observed: int,
          seed: int) -> None:
    """Print JSON benchmark figures (simulator vs forecast per run at equal batch sizes and at
    batch 1, end-to-end saving, training throughput)."""
    from .bench import BenchConfig, run_bench

    if observed >= modules:
        raise click.BadParameter(f"must be below --modules ({modules})",
                                 param_hint="--observed")
    click.echo(json.dumps(run_bench(BenchConfig(modules=modules, resolution=resolution,
                                                sim_runs=sim_runs, particles=particles,
                                                observed=observed, seed=seed)), indent=2))


def main() -> None:
    """Console entry point."""
    cli()
