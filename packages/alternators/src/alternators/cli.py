"""Command line: ``alternators simulate lorenz | import | merge | train | evaluate | sample |
forecast | impute | bench``.  A thin layer over the library functions of the same names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import numpy as np

from physml_core.cli import (
    data_option,
    device_option,
    epochs_option,
    make_group,
    num_option,
    output_option,
    seed_option,
    shard_option,
    threads_option,
)
from physml_core.options import config_from_cli, options_from

from .config import TrainConfig

__all__ = ["cli", "main"]

cli = make_group("alternators", "Alternators and baselines for noisy time series with hidden "
                                "dynamics: simulate, train, evaluate, sample, forecast, impute.")


def _threads(n: int | None) -> None:
    """Set torch's CPU threads (None: leave torch's default)."""
    if n is not None:
        import torch

        torch.set_num_threads(n)


checkpoint_multi = click.option(
    "--checkpoint", "checkpoint", multiple=True, required=True,
    type=click.Path(exists=True, dir_okay=True, path_type=Path),
    help="Checkpoint file or run folder (its latest checkpoint); repeat to compare models.")
checkpoint_one = click.option(
    "--checkpoint", "checkpoint", required=True,
    type=click.Path(exists=True, dir_okay=True, path_type=Path),
    help="Checkpoint file or run folder (its latest checkpoint).")
samples_option = click.option("--samples", "n_samples", type=click.IntRange(1), default=10,
                              show_default=True, help="Stochastic samples per sequence.")
split_option = click.option("--split", type=click.Choice(["train", "val", "test", "all"]),
                            default="test", show_default=True, help="Which sequences to use.")


# ----------------------------------------------------------------------------- simulate
@cli.group()
def simulate() -> None:
    """Simulate benchmark data sets."""


@simulate.command("lorenz")
@output_option(help="HDF5 file to write (x, z, split, spikes and attributes).")
@click.option("--setting", type=click.Choice(["heldout", "reference"]), default="heldout",
              show_default=True,
              help="heldout: many trajectories, held-out test set, causal smoothing. reference: "
                   "the public code's one trajectory and observation model (train and score on "
                   "it; evaluate with --split train).")
@click.option("--n-train", type=click.IntRange(1), default=200, show_default=True)
@click.option("--n-val", type=click.IntRange(0), default=20, show_default=True)
@click.option("--n-test", type=click.IntRange(0), default=20, show_default=True)
@click.option("--steps", "n_steps", type=click.IntRange(2), default=None,
              help="Time steps per trajectory [default: 400].")
@click.option("--dt", type=float, default=None,
              help="Sampling interval in Lorenz time units [default: 0.03 heldout, 0.02 "
                   "reference (Euler)].")
@click.option("--neurons", "n_neurons", type=click.IntRange(1), default=100, show_default=True)
@click.option("--latent-noise", "latent_noise_std", type=click.FloatRange(0), default=0.0,
              show_default=True, help="Gaussian noise on the scaled latents before spiking "
                                      "(heldout).")
@click.option("--centred-smoothing", is_flag=True,
              help="heldout: centred (non-causal) smoothing kernel instead of the causal one.")
@click.option("--narrow", is_flag=True,
              help="reference: tuning widths 0.1-0.2 and log-rates up to 20 (the code's "
                   "literal bound) instead of the widths that reproduce its shipped data.")
@click.option("--no-spikes", is_flag=True, help="Do not store the raw spike trains.")
@seed_option()
@shard_option()
def simulate_lorenz_cmd(output: Path, setting: str, n_train: int, n_val: int, n_test: int,
                        n_steps: int | None, dt: float | None, n_neurons: int,
                        latent_noise_std: float, centred_smoothing: bool, narrow: bool,
                        no_spikes: bool, seed: int, shard: tuple[int, int]) -> None:
    """Lorenz trajectories observed through simulated spiking neurons."""
    from .data.dataset import save_sequences
    from .data.reference import ReferenceLorenzConfig, simulate_reference_lorenz
    from .data.simulate import LorenzConfig, simulate_lorenz

    if setting == "reference":
        if shard != (0, 1):
            raise click.BadParameter("the reference setting is one trajectory: no shards",
                                     param_hint="--shard")
        ref = ReferenceLorenzConfig(n_steps=400 if n_steps is None else n_steps - 1,
                                    dt=0.02 if dt is None else dt, n_neurons=n_neurons,
                                    narrow=narrow, save_spikes=not no_spikes, seed=seed)
        data = simulate_reference_lorenz(ref)
    else:
        config = LorenzConfig(n_train=n_train, n_val=n_val, n_test=n_test,
                              n_steps=400 if n_steps is None else n_steps,
                              dt=0.03 if dt is None else dt, n_neurons=n_neurons,
                              latent_noise_std=latent_noise_std,
                              causal_smoothing=not centred_smoothing,
                              save_spikes=not no_spikes, seed=seed)
        data = simulate_lorenz(config, shard=shard)
    save_sequences(output, data)
    z_shape = None if data.z is None else data.z.shape
    click.echo(f"wrote {output}: x {data.x.shape}, z {z_shape}, "
               f"{len(data.attrs['kept_neurons'])} neurons kept ({setting} setting)")


@cli.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@output_option(help="HDF5 sequence file to write.")
@click.option("--format", "fmt", type=click.Choice(["auto", "npy", "npz", "csv"]),
              default="auto", show_default=True)
@click.option("--id-column", default="sequence", show_default=True,
              help="CSV column with the sequence id (absent: one sequence).")
@click.option("--time-column", default="", help="CSV column that orders the rows of a sequence.")
@click.option("--columns", default="", help="CSV feature columns, comma separated [default: "
                                            "all but id, time and latent columns].")
@click.option("--latent-columns", default="", help="CSV columns holding latents z.")
@click.option("--val-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1), default=0.1, show_default=True)
def import_cmd(source: Path, output: Path, fmt: str, id_column: str, time_column: str,
               columns: str, latent_columns: str, val_fraction: float,
               test_fraction: float) -> None:
    """Convert .npy / .npz / CSV sequences to an HDF5 file; NaN becomes a mask."""
    from .data.dataset import default_split, save_sequences
    from .data.importing import ImportConfig, import_sequences

    def names(text: str) -> tuple[str, ...]:
        return tuple(c.strip() for c in text.split(",") if c.strip())

    data = import_sequences(ImportConfig(
        path=str(source), format=fmt, id_column=id_column, time_column=time_column,
        columns=names(columns), latent_columns=names(latent_columns)))
    if not data.attrs.get("split_given"):
        data.split = default_split(data.n_sequences, val_fraction, test_fraction)
    save_sequences(output, data)
    missing = 0 if data.mask is None else int((~data.mask).sum())
    click.echo(f"wrote {output}: x {data.x.shape}"
               + ("" if data.z is None else f", z {data.z.shape}")
               + f", {missing} missing values masked")


@cli.command("merge")
@output_option(help="Merged HDF5 file.")
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def merge_cmd(output: Path, inputs: tuple[Path, ...]) -> None:
    """Concatenate sequence files (e.g. simulation shards) into one."""
    from .data.dataset import merge_files

    rows = merge_files(list(inputs), output)
    click.echo(f"wrote {output}: {rows} sequences")


# ----------------------------------------------------------------------------- train
@cli.command("train")
@options_from(TrainConfig)
@threads_option()
@click.pass_context
def train_cmd(ctx: click.Context, threads: int | None, **values: object) -> None:
    """Train a model; the same command continues the run in --run-dir (same settings)."""
    from .train import train

    _threads(threads)
    config = config_from_cli(TrainConfig, values, ctx)
    result = train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    summary = {k: round(v, 5) for k, v in result.metrics.items()}
    click.echo(f"checkpoint: {result.checkpoint}")
    state = "done" if result.completed else "stopped at the time limit (the same command " \
        "continues)"
    click.echo(f"epoch {result.step} of {config.epochs}, {state}; {result.seconds:.1f} s this "
               f"session; final {json.dumps(summary)}")


# ----------------------------------------------------------------------------- evaluate
@cli.command("evaluate")
@checkpoint_multi
@data_option()
@output_option(help="Folder for evaluation.json, table.md and PNG figures.")
@split_option
@samples_option
@click.option("--horizon", type=click.IntRange(0), default=50, show_default=True,
              help="Forecast steps (0: no forecast).")
@click.option("--context", type=click.IntRange(1), default=None,
              help="Observed steps before the forecast [default: length - horizon].")
@click.option("--gap", default=None, metavar="START:STOP",
              help="Steps hidden for the imputation score [default: --horizon steps in the "
                   "middle]; 0:0 for none.")
@click.option("--max-sequences", type=click.IntRange(0), default=0, show_default=True)
@click.option("--no-plots", is_flag=True)
@threads_option()
@device_option()
@seed_option()
def evaluate_cmd(checkpoint: tuple[Path, ...], data: Path, output: Path, split: str,
                 n_samples: int, horizon: int, context: int | None, gap: str | None,
                 max_sequences: int, no_plots: bool, threads: int | None, device: str,
                 seed: int) -> None:
    """Score models: latent MAE/CC; forecast and imputation MAE, CRPS, coverage; plots."""
    from .evaluate import EvaluateConfig, evaluate

    _threads(threads)
    gap_steps = None
    if gap is not None:
        try:
            start_s, stop_s = gap.split(":")
            gap_steps = (int(start_s), int(stop_s))
        except ValueError:
            raise click.BadParameter(f"{gap!r} is not START:STOP", param_hint="--gap") from None
    report = evaluate(EvaluateConfig(
        checkpoints=[str(c) for c in checkpoint], data=str(data), output=str(output),
        split=split, n_samples=n_samples, horizon=horizon, context=context, gap=gap_steps,
        max_sequences=max_sequences, seed=seed, device=device, plots=not no_plots))
    click.echo(report["table"])
    click.echo(f"report: {Path(output) / 'evaluation.json'}")


# ----------------------------------------------------------------------------- inference
@cli.command("sample")
@checkpoint_one
@output_option(help="Predictions HDF5 file.")
@num_option(default=8, help="Number of sequences.")
@click.option("--steps", "n_steps", type=click.IntRange(1), default=400, show_default=True)
@click.option("--samples", "n_samples", type=click.IntRange(1), default=1, show_default=True)
@device_option()
@seed_option()
def sample_cmd(checkpoint: Path, output: Path, num: int, n_steps: int, n_samples: int,
               device: str, seed: int) -> None:
    """Generate sequences from a trained model alone (free running)."""
    from .inference import sample_sequences, save_predictions

    pred = sample_sequences(checkpoint, num, n_steps, n_samples, seed, device)
    pred.attrs["task"] = "sample"
    save_predictions(output, pred)
    click.echo(f"wrote {output}: {num} sequences x {n_samples} samples x {n_steps} steps")


@cli.command("forecast")
@checkpoint_one
@data_option()
@output_option(help="Predictions HDF5 file.")
@click.option("--horizon", type=click.IntRange(1), default=50, show_default=True)
@click.option("--context", type=click.IntRange(1), default=None,
              help="Observed steps [default: length - horizon].")
@split_option
@samples_option
@device_option()
@seed_option()
def forecast_cmd(checkpoint: Path, data: Path, output: Path, horizon: int, context: int | None,
                 split: str, n_samples: int, device: str, seed: int) -> None:
    """Observe the first steps of each sequence, then forecast."""
    from .inference import forecast_file, save_predictions

    pred, truth = forecast_file(checkpoint, data, horizon, context, split, n_samples, seed,
                                device)
    t_len = pred.x_samples.shape[2]
    save_predictions(output, pred, x_true=truth.x[:, :t_len],
                     z_true=None if truth.z is None else truth.z[:, :t_len])
    click.echo(f"wrote {output}: {pred.x_samples.shape[0]} forecasts of {horizon} steps")


@cli.command("impute")
@checkpoint_one
@data_option()
@output_option(help="Predictions HDF5 file.")
@click.option("--missing", default=None, metavar="START:STOP[,START:STOP]",
              help="Steps to treat as missing in every sequence.")
@click.option("--mask", "mask_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help=".npy mask, True where observed, shape (T,) or (N, T).")
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]), default="all",
              show_default=True)
@samples_option
@device_option()
@seed_option()
def impute_cmd(checkpoint: Path, data: Path, output: Path, missing: str | None,
               mask_file: Path | None, split: str, n_samples: int, device: str,
               seed: int) -> None:
    """Fill missing steps (from --missing, --mask or the file's mask dataset)."""
    from .data.dataset import load_sequences
    from .inference import impute_file, parse_missing, save_predictions

    if missing and mask_file:
        raise click.BadParameter("give --missing or --mask, not both", param_hint="--mask")
    mask = None
    if missing:
        mask = parse_missing(missing, load_sequences(data).n_steps)
    elif mask_file:
        try:
            mask = np.load(mask_file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{mask_file}: not a readable .npy mask ({exc})") from None
    pred, truth = impute_file(checkpoint, data, mask, split, n_samples, seed, device)
    save_predictions(output, pred, x_true=truth.x, z_true=truth.z)
    click.echo(f"wrote {output}: {int((~pred.mask).sum())} missing values filled")


# ----------------------------------------------------------------------------- bench
@cli.command("bench")
@output_option(required=False, help="Also write the JSON to this file.")
@epochs_option(default=2, help="Timed epochs per model.")
@click.option("--n-train", type=click.IntRange(1), default=32, show_default=True)
@click.option("--steps", "n_steps", type=click.IntRange(2), default=200, show_default=True)
@click.option("--hidden", type=click.IntRange(1), default=128, show_default=True)
@threads_option()
@device_option()
def bench_cmd(output: Path | None, epochs: int, n_train: int, n_steps: int, hidden: int,
              threads: int | None, device: str) -> None:
    """Training s/epoch and sampling sequences/s for every model (JSON)."""
    from physml_core.config import save_json

    from .bench import BenchConfig, run_benchmark

    _threads(threads)
    result = run_benchmark(BenchConfig(epochs=epochs, n_train=n_train, n_steps=n_steps,
                                       hidden=hidden, device=device))
    if output is not None:
        save_json(output, result)
    click.echo(json.dumps(result, indent=2))


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
