"""``beamenv`` command line: info, rollout, scan, bench, plot.

A thin layer over :mod:`beamenv.rollout`, :mod:`beamenv.scan`, :mod:`beamenv.bench` with the
physml option vocabulary and error convention (user error: one line on stderr, exit status 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from physml_core.atomic import atomic_path
from physml_core.cli import make_group, num_option, output_option, seed_option

from .fidelity import FIDELITY_PRESETS

__all__ = ["main"]

cli = make_group("beamenv", "Gymnasium environments on BLonD for PS Booster RF phase control.")

_fidelity = click.option("--fidelity", type=click.Choice(list(FIDELITY_PRESETS)),
                         default="fast", show_default=True, help="Simulation fidelity preset.")
_env = click.option("--env", "env_name", type=click.Choice(["cycle", "correction"]),
                    default="cycle", show_default=True, help="Which environment.")
_steps = click.option("--steps", type=click.IntRange(1, 1000), default=30, show_default=True,
                      help="Steps per episode.")
_intensity = click.option("--intensity", type=click.FloatRange(0.0, 5e13), default=8e12,
                          show_default=True, help="Protons per bunch (0: no space charge).")


def _emit(data: dict, output: Path | None) -> None:
    text = json.dumps(data, indent=2)
    if output is None:
        click.echo(text)
    else:
        with atomic_path(output) as tmp:  # never a half-written file under the final name
            tmp.write_text(text + "\n")
        click.echo(f"wrote {output}", err=True)


@cli.command()
@_fidelity
def info(fidelity: str) -> None:
    """Backend (building it if needed), fidelity presets and machine parameters."""
    import dataclasses

    from . import CORRECTION_ENV_ID, CYCLE_ENV_ID, __version__
    from .backend import ensure_backend
    from .machine import PSBRing, default_cycle, ek_from_momentum

    backend = ensure_backend()
    ring = PSBRing()
    cycle = default_cycle(ring)
    data = {
        "version": __version__,
        "env_ids": [CYCLE_ENV_ID, CORRECTION_ENV_ID],
        "backend": dataclasses.asdict(backend),
        "fidelity": dataclasses.asdict(FIDELITY_PRESETS[fidelity]),
        "fidelity_presets": list(FIDELITY_PRESETS),
        "ring": ring.summary(),
        "cycle": {"duration_s": cycle.duration_s,
                  "turns": cycle.number_of_turns(ring),
                  "ek_start_eV": float(ek_from_momentum(cycle.momentum_eV_c[0])),
                  "ek_end_eV": float(ek_from_momentum(cycle.momentum_eV_c[-1])),
                  "max_energy_gain_per_turn_eV": cycle.max_energy_gain_per_turn_eV(ring)},
    }
    _emit(data, None)


@cli.command()
@_env
@click.option("--policy", type=click.Choice(["zero", "random", "scan"]), default="zero",
              show_default=True, help="Baseline policy.")
@num_option(default=1, help="Number of episodes.")
@_fidelity
@_steps
@_intensity
@seed_option()
@output_option(required=False, help="JSON file for the results (default: stdout).")
def rollout(env_name: str, policy: str, num: int, fidelity: str, steps: int, intensity: float,
            seed: int, output: Path | None) -> None:
    """Run a baseline policy and report its returns."""
    from .rollout import RolloutConfig
    from .rollout import rollout as run

    cfg = RolloutConfig(env=env_name, policy=policy, episodes=num, seed=seed,
                        fidelity=fidelity, n_steps=steps, intensity=intensity)
    _emit(run(cfg), output)


@cli.command()
@click.option("--phases", "n_phases", type=click.IntRange(3, 360), default=16,
              show_default=True, help="Trial phases per step.")
@_fidelity
@_steps
@_intensity
@seed_option()
@output_option(required=False, help="JSON file for the Phi_2 program (default: stdout).")
def scan(n_phases: int, fidelity: str, steps: int, intensity: float, seed: int,
         output: Path | None) -> None:
    """Best Phi_2 program along the cycle by a greedy phase scan (the classical baseline)."""
    from .rollout import RolloutConfig, make_env
    from .scan import scan_cycle

    cfg = RolloutConfig(env="cycle", fidelity=fidelity, n_steps=steps, intensity=intensity)
    env = make_env(cfg)
    result = scan_cycle(env, n_phases=n_phases, seed=seed)
    env.close()
    _emit({"config": {"n_phases": n_phases, "fidelity": fidelity, "steps": steps,
                      "intensity": intensity, "seed": seed}, **result.to_dict()}, output)


@cli.command()
@click.option("--presets", default="fast,medium,high", show_default=True,
              help="Comma-separated fidelity presets to time.")
@click.option("--steps", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Timed steps per preset.")
@click.option("--vector-envs", default="1,2", show_default=True,
              help="Comma-separated AsyncVectorEnv sizes ('' to skip).")
@_intensity
@output_option(required=False, help="JSON file (default: stdout).")
def bench(presets: str, steps: int, vector_envs: str, intensity: float,
          output: Path | None) -> None:
    """Step time per preset, BLonD turns/s, env overhead and vector-env scaling (JSON)."""
    from .bench import run_bench

    names = tuple(p.strip() for p in presets.split(",") if p.strip())
    for name in names:
        if name not in FIDELITY_PRESETS:
            raise click.BadParameter(f"unknown preset {name!r}", param_hint="--presets")
    try:
        sizes = tuple(int(v) for v in vector_envs.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("must be integers like 1,2", param_hint="--vector-envs"
                                 ) from None
    _emit(run_bench(names, steps, intensity, sizes), output)


@cli.command()
@click.option("--policy", type=click.Choice(["zero", "random"]), default="zero",
              show_default=True, help="Policy driving the cycle.")
@click.option("--trace", "trace_file", type=click.Path(exists=True, dir_okay=False,
                                                        path_type=Path), default=None,
              help="Plot a recorded PSBPhaseCorrection episode instead (JSON with 'profiles' "
                   "and 'abs_phase_error_rad', or a list of results whose first has 'trace', "
                   "as written by experiments/eval_correction.py --trace).")
@_fidelity
@_steps
@_intensity
@seed_option()
@output_option(required=True, help="PNG file of the profiles along the cycle.")
def plot(policy: str, trace_file: Path | None, fidelity: str, steps: int, intensity: float,
         seed: int, output: Path) -> None:
    """Plot line-density profiles along the cycle for a policy, or a recorded episode."""
    import numpy as np

    from .render import plot_episode, plot_profiles
    from .rollout import RolloutConfig
    from .rollout import rollout as run

    if output.suffix.lower() != ".png":
        raise click.BadParameter("must end in .png", param_hint="--output")
    if trace_file is not None:
        try:
            data = json.loads(trace_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"not a readable JSON file ({exc})",
                                     param_hint="--trace") from None
        if isinstance(data, list):
            data = next((r.get("trace") for r in data if isinstance(r, dict) and r.get("trace")),
                        None)
        if not isinstance(data, dict) or not {"profiles", "abs_phase_error_rad"} <= set(data):
            raise click.BadParameter("needs 'profiles' and 'abs_phase_error_rad'",
                                     param_hint="--trace")
        plot_episode(np.array(data["profiles"]), np.array(data["abs_phase_error_rad"]),
                     str(output), title=f"PSBPhaseCorrection, policy {data.get('policy', '?')}, "
                                        f"return {data.get('return', float('nan')):.2f}")
        click.echo(f"wrote {output}", err=True)
        return
    cfg = RolloutConfig(env="cycle", policy=policy, seed=seed, fidelity=fidelity,
                        n_steps=steps, intensity=intensity)
    result = run(cfg, record_profiles=True)
    trace = result["first_episode"]
    output.parent.mkdir(parents=True, exist_ok=True)
    plot_profiles(np.array(trace["profiles"]), np.ones(len(trace["t_s"])),
                  np.array(trace["t_s"]), str(output),
                  title=f"PSB cycle, policy {policy}, return {result['mean_return']:.2f}")
    click.echo(f"wrote {output}", err=True)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
