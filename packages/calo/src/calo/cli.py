"""``calo`` command line: simulate, merge, train, generate, evaluate, bench.

A thin click layer over the library: every command builds a config dataclass and calls one
function.  User errors print one line and exit with status 2 (physml_core.cli convention).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Literal

import click
from click.core import ParameterSource

from physml_core.cli import (
    checkpoint_option,
    device_option,
    make_group,
    num_option,
    output_option,
    seed_option,
    shard_option,
)
from physml_core.config import save_json
from physml_core.options import config_from_cli, options_from

from .config import DEFAULT_PRESET, PRESETS, TrainConfig, preset_config

__all__ = ["cli", "main"]

cli = make_group("calo", "Calorimeter shower simulation, generative models (CaloGAN, CaloVAE) "
                         "and physics evaluation in the CaloGAN HDF5 format.")


def _energy(ctx: click.Context, param: click.Parameter, value: str | None
            ) -> tuple[float, float] | None:
    if value is None:
        return None
    from .generate import parse_energy_range

    try:
        return parse_energy_range(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command()
@num_option(default=10000, help="Number of showers (of all shards together).")
@output_option(help="CaloGAN HDF5 file to write.")
@click.option("--particle", type=click.Choice(["eplus", "gamma"]), default="eplus",
              show_default=True, help="Incident particle: positron or photon.")
@click.option("--energy", callback=_energy, default="1:100", show_default=True,
              help="Incident energy range MIN:MAX in GeV (uniform), or one value.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Random seed (runs are reproducible: the same seed gives the same showers). "
                   "Every file records its seed, particle and rows, so give a held-out file "
                   "another seed than the training file: 'calo evaluate --checkpoint' refuses a "
                   "reference that shares rows with the training data. Shards of one file need "
                   "the same seed.")
@click.option("--noise-mev", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Gaussian electronic noise per cell, standard deviation in MeV, added after "
                   "the shower (cells read out as max(E + noise, 0)). 0 = off, as in CaloGAN's "
                   "Geant4 files.")
@shard_option()
def simulate(num: int, output: Path, particle: Literal["eplus", "gamma"],
             energy: tuple[float, float], seed: int, noise_mev: float,
             shard: tuple[int, int]) -> None:
    """Simulate showers with the GFlash-style parametric simulator."""
    from .sim import SimConfig, simulate_to_file

    cfg = SimConfig(particle=particle, energy_min_gev=energy[0], energy_max_gev=energy[1],
                    seed=seed, noise_mev=noise_mev)
    rows = simulate_to_file(output, num, cfg, shard=shard, progress_bar=True)
    click.echo(f"wrote {rows} {particle} showers (seed {seed}) to {output}")


@cli.command()
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@output_option(help="Merged CaloGAN HDF5 file.")
def merge(inputs: tuple[Path, ...], output: Path) -> None:
    """Merge CaloGAN files (e.g. simulation shards) into one."""
    from .sim import merge_files

    rows = merge_files(list(inputs), output)
    click.echo(f"merged {len(inputs)} files, {rows} showers, into {output}")


@cli.command()
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=DEFAULT_PRESET,
              show_default=True, help="Training recipe, the base of every option not given: "
              "cpu (~30 min on 2 cores) or paper (the CaloGAN paper's; a GPU job). The "
              "defaults shown below are the cpu VAE recipe's; each preset has its own for "
              "--model gan (calo.config.PRESETS).")
@options_from(TrainConfig, exclude=("data",))
@click.option("--data", "data", multiple=True, required=True, metavar="FILE",
              help="Training showers (CaloGAN HDF5; the last 10 % of the rows used are held "
                   "out for validation). CaloGAN: repeat --data for several particle types, "
                   "one file each (the original's multi-particle ACGAN mode).")
@click.option("--particles", default=None, metavar="NAME,...",
              help="Particle type of each --data file, in order (default: what each file "
                   "records, e.g. eplus, gamma; needed for files without provenance).")
@click.option("--all-rows", is_flag=True, help="Use every shower of the file (no --max-rows).")
@click.pass_context
def train(ctx: click.Context, preset: str, data: tuple[str, ...], particles: str | None,
          all_rows: bool, **values: object) -> None:
    """Train CaloGAN or CaloVAE; resumes when --run-dir holds checkpoints of the same run.
    Runs unchanged under torchrun (data-parallel, same global batch). Several --data files
    (one per particle type) train the multi-particle CaloGAN."""
    from .train import train as run_train

    if all_rows and ctx.get_parameter_source("max_rows") is not ParameterSource.DEFAULT:
        raise click.UsageError("give --max-rows or --all-rows, not both")
    base = preset_config(preset, str(values["model"]))
    config = config_from_cli(TrainConfig, values, ctx, base=base)
    names = [p.strip() for p in particles.split(",")] if particles is not None else []
    config = dataclasses.replace(config, data=list(data), particles=names)
    if all_rows:
        config = dataclasses.replace(config, max_rows=None)
    result = run_train(config)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    done = f"{result.step} of {config.epochs} epochs"
    state = (f"trained {config.model} for {done}" if result.completed else
             f"stopped {config.model} at the time limit after {done} (the same command "
             "continues)")
    click.echo(f"{state}; checkpoint {result.checkpoint}")


@cli.command()
@checkpoint_option()
@num_option(default=None, help="Number of showers (default 10000, or the energy file's length).")
@output_option(help="CaloGAN HDF5 file to write.")
@click.option("--energy", callback=_energy, default=None,
              help="Incident energies MIN:MAX in GeV, uniform (default: the training range).")
@click.option("--energy-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="HDF5 file whose 'energy' (N, 1) GeV dataset drives generation.")
@click.option("--batch-size", type=click.IntRange(1), default=1024, show_default=True)
@click.option("--bf16", is_flag=True, help="bfloat16 inference (autocast).")
@click.option("--particle", default=None, metavar="NAME",
              help="Particle type to generate (required for a multi-particle CaloGAN; one of "
                   "the types it was trained on, e.g. eplus or gamma).")
@device_option()
@seed_option()
def generate(checkpoint: Path, num: int | None, output: Path, energy: tuple[float, float] | None,
             energy_file: Path | None, batch_size: int, bf16: bool, particle: str | None,
             device: str, seed: int) -> None:
    """Generate showers from a checkpoint into a CaloGAN HDF5 file (streaming)."""
    from .generate import GenerateConfig
    from .generate import generate as run_generate

    cfg = GenerateConfig(checkpoint=str(checkpoint), output=str(output), num=num,
                         energy_gev=energy, energy_file=str(energy_file) if energy_file else None,
                         batch_size=batch_size, device=device, seed=seed,
                         dtype="bf16" if bf16 else "fp32", particle=particle)
    rows = run_generate(cfg)
    click.echo(f"wrote {rows} generated showers to {output}")


@cli.command()
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Reference showers (CaloGAN HDF5), e.g. held-out simulation.")
@click.option("--generated", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="Generated showers (CaloGAN HDF5).")
@click.option("--reference-2", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Independent reference sample for the floor (default: the "
                                 "second half of --reference).")
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), default=None,
              help="Refuse reference files that share rows with this checkpoint's training data.")
@output_option(help="Folder for report.json and the PNG plots.", default="calo_eval")
@click.option("--max-showers", type=click.IntRange(10), default=20000, show_default=True,
              help="Showers per sample (all samples are cut to one size).")
@click.option("--no-classifier", is_flag=True, help="Skip the classifier tests.")
@click.option("--classifier-seeds", type=click.IntRange(1), default=5, show_default=True,
              help="Classifier runs (seeds 0..N-1); mean and sd are reported.")
@click.option("--classifier-epochs", type=click.IntRange(1), default=50, show_default=True,
              help="Classifier epochs (CaloChallenge: 50).")
@click.option("--classifier-dtype", type=click.Choice(["float64", "float32"]),
              default="float64", show_default=True,
              help="Classifier precision (CaloChallenge: float64; float32 is faster on CPU).")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch CPU threads for the classifier (default: torch's setting).")
@click.option("--fpd-min-samples", type=click.IntRange(2), default=10000, show_default=True,
              help="Smallest FPD batch (JetNet's min_samples; CaloChallenge uses 10000).")
@click.option("--kpd-batch-size", type=click.IntRange(2), default=10000, show_default=True,
              help="KPD batch size (CaloChallenge uses 10000).")
@click.option("--min-energy-mev", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="Lower edge of the log-binned layer-energy histograms "
                                      "(CaloChallenge: the minimal readout).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@seed_option()
def evaluate(reference: Path, generated: Path, reference_2: Path | None,
             checkpoint: Path | None, output: Path, max_showers: int, no_classifier: bool,
             classifier_seeds: int, classifier_epochs: int, classifier_dtype: str,
             threads: int | None,
             fpd_min_samples: int, kpd_batch_size: int, min_energy_mev: float, no_plots: bool,
             seed: int) -> None:
    """Compare generated with reference showers, each figure beside its floor (an independent
    reference sample): separation powers, FPD/KPD, classifier AUC/JSD, plots."""
    from .evaluate import EvaluateConfig
    from .evaluate import evaluate as run_evaluate
    from .metrics import ClassifierConfig

    cls = ClassifierConfig(epochs=classifier_epochs, seeds=tuple(range(classifier_seeds)),
                           threads=threads, dtype=classifier_dtype)
    cfg = EvaluateConfig(reference=str(reference), generated=str(generated),
                         reference_2=str(reference_2) if reference_2 else None,
                         checkpoint=str(checkpoint) if checkpoint else None,
                         output=str(output), max_showers=max_showers,
                         classifier=not no_classifier, classifier_config=cls,
                         fpd_min_samples=fpd_min_samples, kpd_batch_size=kpd_batch_size,
                         min_energy_mev=min_energy_mev,
                         plots=not no_plots, seed=seed)
    report = run_evaluate(cfg)
    click.echo(json.dumps(summary_lines(report), indent=2))
    click.echo(f"report: {Path(output) / 'report.json'}")


def summary_lines(report: dict) -> dict[str, str]:
    """Headline figures of an evaluation report as "value (floor ...)" strings."""
    def fmt(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4g}"

    out = {"showers per sample": str(report["n_showers"]),
           "held-out check": report["held_out_check"]["status"]}
    for key in ("fpd_x1e3", "kpd_x1e3"):
        out[key] = (f"{fmt(report[key])} +- {fmt(report[key + '_error'])} (floor "
                    f"{fmt(report[key + '_floor'])} +- {fmt(report[key + '_error_floor'])})")
    for key in ("classifier_low_level", "classifier_high_level"):
        if key in report:
            c, f = report[key], report[key]["floor"]
            out[key + " AUC"] = (f"{fmt(c['auc'])} +- {fmt(c['auc_sd'])} (floor "
                                 f"{fmt(f['auc'])} +- {fmt(f['auc_sd'])})")
            out[key + " JSD"] = (f"{fmt(c['jsd'])} +- {fmt(c['jsd_sd'])} (floor "
                                 f"{fmt(f['jsd'])} +- {fmt(f['jsd_sd'])})")
    obs = report["observables"]["E_tot_over_E_inc"]
    out["separation power E_tot/E_inc"] = (f"{fmt(obs['separation_power'])} (floor "
                                           f"{fmt(obs['separation_power_floor'])})")
    out["mean separation power"] = (f"{fmt(report['mean_separation_power'])} (floor "
                                    f"{fmt(report['mean_separation_power_floor'])})")
    out["empty cell fraction"] = (f"{report['empty_fraction_generated']:.4f} (reference "
                                  f"{report['empty_fraction_reference']:.4f}, independent "
                                  f"{report['empty_fraction_independent']:.4f})")
    return out


@cli.command()
@device_option()
@click.option("--batch-sizes", default="1,128,1024,10000", show_default=True,
              help="Comma-separated generation batch sizes.")
@click.option("--models", default="vae,gan", show_default=True, help="Models to time.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Minimum timing per figure.")
@click.option("--bf16", is_flag=True, help="Also time bfloat16 inference.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch CPU threads (default: torch's setting).")
@output_option(required=False, help="Also write the JSON here.")
def bench(device: str, batch_sizes: str, models: str, seconds: float, bf16: bool,
          threads: int | None, output: Path | None) -> None:
    """Print throughput figures (showers/s) as JSON."""
    from .bench import run_benchmark

    try:
        sizes = [int(s) for s in batch_sizes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of integers: {batch_sizes!r}",
                                 param_hint="--batch-sizes") from None
    if not sizes or any(s < 1 for s in sizes):
        raise click.BadParameter("batch sizes must be positive", param_hint="--batch-sizes")
    result = run_benchmark(device, sizes, [m.strip() for m in models.split(",") if m.strip()],
                           seconds, bf16, threads=threads)
    if output is not None:
        save_json(output, result)
    click.echo(json.dumps(result, indent=2))


def main() -> None:
    """Console-script entry point (also ``python -m calo.cli`` and ``torchrun ... -m
    calo.cli``)."""
    cli()


if __name__ == "__main__":
    main()


