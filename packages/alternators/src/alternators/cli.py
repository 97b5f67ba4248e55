"""Command line: ``alternators simulate lorenz | merge | train | evaluate | sample | forecast |
impute | bench``.  A thin layer over the library functions of the same names."""

from __future__ import annotations

import json
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
    run_dir_option,
    seed_option,
    shard_option,
)

from .models.factory import MODEL_NAMES

__all__ = ["cli", "main"]

cli = make_group("alternators", "Alternators and baselines for noisy time series with hidden "
                                "dynamics: simulate, train, evaluate, sample, forecast, impute.")


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


threads_option = click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
                              help="CPU threads for torch (0: torch's default).")
checkpoint_multi = click.option(
    "--checkpoint", "checkpoints", multiple=True, required=True,
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
@click.option("--n-train", type=click.IntRange(1), default=200, show_default=True)
@click.option("--n-val", type=click.IntRange(0), default=20, show_default=True)
@click.option("--n-test", type=click.IntRange(0), default=20, show_default=True)
@click.option("--steps", "n_steps", type=click.IntRange(2), default=400, show_default=True,
              help="Time steps per trajectory.")
@click.option("--dt", type=float, default=0.03, show_default=True,
              help="Sampling interval in Lorenz time units.")
@click.option("--neurons", "n_neurons", type=click.IntRange(1), default=100, show_default=True)
@click.option("--latent-noise", "latent_noise_std", type=click.FloatRange(0), default=0.0,
              show_default=True, help="Gaussian noise on the scaled latents before spiking.")
@click.option("--no-spikes", is_flag=True, help="Do not store the raw spike trains.")
@seed_option()
@shard_option()
def simulate_lorenz_cmd(output: Path, n_train: int, n_val: int, n_test: int, n_steps: int,
                        dt: float, n_neurons: int, latent_noise_std: float, no_spikes: bool,
                        seed: int, shard: tuple[int, int]) -> None:
    """Lorenz trajectories observed through simulated spiking neurons."""
    from .data.dataset import save_sequences
    from .data.simulate import LorenzConfig, simulate_lorenz

    config = LorenzConfig(n_train=n_train, n_val=n_val, n_test=n_test, n_steps=n_steps, dt=dt,
                          n_neurons=n_neurons, latent_noise_std=latent_noise_std,
                          save_spikes=not no_spikes, seed=seed)
    data = simulate_lorenz(config, shard=shard)
    save_sequences(output, data)
    click.echo(f"wrote {output}: x {data.x.shape}, z {data.z.shape}, "
               f"{len(data.attrs['kept_neurons'])} neurons kept")


@cli.command("merge")
@output_option(help="Merged HDF5 file.")
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def merge_cmd(output: Path, inputs: tuple[Path, ...]) -> None:
    """Concatenate sequence files (e.g. simulation shards) into one."""
    from physml_core.hdf5 import concat_h5

    from .data.dataset import SEQUENCE_SCHEMA

    rows = concat_h5(list(inputs), output, SEQUENCE_SCHEMA, attrs={"shard": "merged"})
    click.echo(f"wrote {output}: {rows} sequences")


# ----------------------------------------------------------------------------- train
@cli.command("train")
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), default="alternator",
              show_default=True, help="Which model to train.")
@data_option()
@epochs_option(default=60)
@run_dir_option()
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3,
              show_default=True)
@click.option("--weight-decay", type=click.FloatRange(0), default=1e-4, show_default=True)
@click.option("--hidden", type=click.IntRange(1), default=128, show_default=True)
@click.option("--layers", type=click.IntRange(1), default=3, show_default=True)
@click.option("--window", type=click.IntRange(0), default=0, show_default=True,
              help="Train on random windows of this many steps (0: whole sequences).")
@click.option("--sigma-x", type=click.FloatRange(0, 1, max_open=True), default=0.2,
              show_default=True, help="Alternator observation noise.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.7,
              show_default=True, help="Alternator mixing coefficient (start of the schedule).")
@click.option("--sigma-z", type=click.FloatRange(0), default=None,
              help="Alternator latent noise [default: alpha * sigma_x].")
@click.option("--alpha-schedule", type=click.Choice(["constant", "linear", "cosine"]),
              default="constant", show_default=True)
@click.option("--alpha-end", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Final alpha of a linear/cosine schedule.")
@click.option("--body", type=click.Choice(["mlp", "conv"]), default="mlp", show_default=True)
@click.option("--obs-shape", default=None, metavar="C,H,W",
              help="Image shape of the observations (conv body).")
@click.option("--cell", type=click.Choice(["gru", "lstm"]), default="gru", show_default=True,
              help="Recurrent cell of the rnn baseline.")
@click.option("--latent-weight", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Weight of the latent error (supervised).")
@click.option("--obs-weight", type=click.FloatRange(0), default=0.5, show_default=True,
              help="Weight of the one-step observation error.")
@click.option("--unsupervised", is_flag=True, help="Ignore the file's latents z.")
@click.option("--latent-dim", type=click.IntRange(1), default=3, show_default=True,
              help="Latent size when unsupervised.")
@click.option("--checkpoint-every", type=click.IntRange(1), default=5, show_default=True)
@click.option("--no-tensorboard", is_flag=True)
@threads_option
@device_option()
@seed_option()
def train_cmd(model_name: str, data: Path, epochs: int, run_dir: Path | None, batch_size: int,
              lr: float, weight_decay: float, hidden: int, layers: int, window: int, sigma_x: float, alpha: float,
              sigma_z: float | None, alpha_schedule: str, alpha_end: float | None, body: str,
              obs_shape: str | None, cell: str, latent_weight: float, obs_weight: float,
              unsupervised: bool, latent_dim: int,
              checkpoint_every: int, no_tensorboard: bool, threads: int, device: str,
              seed: int) -> None:
    """Train a model; resumes when --run-dir already holds checkpoints."""
    from .models.factory import ModelConfig
    from .train import TrainConfig, train

    _threads(threads)
    shape = None
    if obs_shape:
        try:
            shape = [int(v) for v in obs_shape.split(",")]
        except ValueError:
            raise click.BadParameter(f"{obs_shape!r} is not C,H,W", param_hint="--obs-shape")\
                from None
    model = ModelConfig(name=model_name, hidden=hidden, layers=layers, body=body,
                        obs_shape=shape, sigma_x=sigma_x, alpha=alpha, sigma_z=sigma_z,
                        alpha_schedule=alpha_schedule,
                        alpha_end=alpha if alpha_end is None else alpha_end,
                        latent_dim=latent_dim, cell=cell, latent_weight=latent_weight,
                        obs_weight=obs_weight)
    config = TrainConfig(data=str(data), run_dir=None if run_dir is None else str(run_dir),
                         model=model, supervised=not unsupervised, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                         window=window,
                         checkpoint_every=checkpoint_every, device=device, seed=seed,
                         tensorboard=not no_tensorboard)
    result = train(config)
    summary = {k: round(v, 5) for k, v in result.metrics.items()}
    click.echo(f"checkpoint: {result.checkpoint}")
    click.echo(f"{result.seconds_per_epoch:.2f} s/epoch; final {json.dumps(summary)}")


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
@click.option("--max-sequences", type=click.IntRange(0), default=0, show_default=True)
@click.option("--no-plots", is_flag=True)
@threads_option
@device_option(default="cpu")
@seed_option()
def evaluate_cmd(checkpoints: tuple[Path, ...], data: Path, output: Path, split: str,
                 n_samples: int, horizon: int, context: int | None, max_sequences: int,
                 no_plots: bool, threads: int, device: str, seed: int) -> None:
    """Score models on held-out sequences: MAE, MSE, CC per latent dim; forecasts; plots."""
    from .evaluate import EvaluateConfig, evaluate

    _threads(threads)
    report = evaluate(EvaluateConfig(
        checkpoints=[str(c) for c in checkpoints], data=str(data), output=str(output),
        split=split, n_samples=n_samples, horizon=horizon, context=context,
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
@device_option(default="cpu")
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
@device_option(default="cpu")
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
@device_option(default="cpu")
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
    click.echo(f"wrote {output}: {int((~pred.mask).sum())} missing steps filled")


# ----------------------------------------------------------------------------- bench
@cli.command("bench")
@output_option(required=False, help="Also write the JSON to this file.")
@epochs_option(default=2, help="Timed epochs per model.")
@click.option("--n-train", type=click.IntRange(1), default=32, show_default=True)
@click.option("--steps", "n_steps", type=click.IntRange(2), default=200, show_default=True)
@click.option("--hidden", type=click.IntRange(1), default=128, show_default=True)
@threads_option
@device_option()
def bench_cmd(output: Path | None, epochs: int, n_train: int, n_steps: int, hidden: int,
              threads: int, device: str) -> None:
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
