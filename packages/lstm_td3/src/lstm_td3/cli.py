"""``lstm-td3`` command line: train, evaluate, plot, bench (thin layer over the library)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from physml_core.cli import (
    checkpoint_option,
    device_option,
    make_group,
    output_option,
    seed_option,
    threads_option,
)
from physml_core.config import from_dict, load_json
from physml_core.options import config_from_cli, options_from

from .config import PRESETS, TrainConfig

__all__ = ["cli", "main"]

cli = make_group(
    "lstm-td3",
    "LSTM-TD3: memory-based TD3 for partially observable control (Meng et al. 2021).",
    distribution="lstm-td3",
)


def _env_kwargs(ctx: click.Context, param: click.Parameter, value: str | None
                ) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object")
    return parsed


def _networks(cfg: TrainConfig, past_act: bool | None, hidden: int | None) -> TrainConfig:
    """``--past-act`` and ``--hidden`` applied to the actor's and the critics' networks."""
    agent = cfg.agent
    for which in ("actor", "critic"):
        net = getattr(agent, which)
        if past_act is not None:
            net = replace(net, hist_with_past_act=past_act)
        if hidden is not None:  # same layer structure, every width = hidden
            net = replace(
                net, mem_pre_lstm=tuple(hidden for _ in net.mem_pre_lstm), lstm_hidden=hidden,
                mem_after_lstm=tuple(hidden for _ in net.mem_after_lstm),
                cur_feature=tuple(hidden for _ in net.cur_feature),
                post_comb=tuple(hidden for _ in net.post_comb))
        agent = replace(agent, **{which: net})
    return replace(cfg, agent=agent)


def build_config(values: dict[str, Any], ctx: click.Context | None = None,
                 preset_name: str = "paper", config_file: Path | None = None,
                 env_kwargs: dict[str, Any] | None = None, past_act: bool | None = None,
                 hidden: int | None = None) -> TrainConfig:
    """The ``train`` command's config: the preset (or a TrainConfig JSON file) with the
    options given on the command line laid over it (with ``ctx``: only those typed; without:
    every entry of ``values``)."""
    base = from_dict(TrainConfig, load_json(config_file)) if config_file else PRESETS[preset_name]
    cfg = config_from_cli(TrainConfig, values, ctx, base=base)
    if env_kwargs is not None:
        cfg = replace(cfg, env_kwargs=env_kwargs)
    if past_act is not None or hidden is not None:
        cfg = _networks(cfg, past_act, hidden)
    return cfg


@cli.command("train")
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="paper",
              show_default=True, help="Starting values: the paper's (the defaults shown here) or "
              "the beam fork's; options given on the command line override them.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default=None, help="TrainConfig JSON (instead of a preset).")
@click.option("--env-kwargs", default=None, metavar="JSON", callback=_env_kwargs,
              help='Keyword arguments for gymnasium.make, e.g. \'{"n_bins": 64}\'.')
@click.option("--past-act/--no-past-act", default=None,
              help="Feed past actions to the memory branch (actor and critics). [on]")
@click.option("--hidden", type=click.IntRange(min=1), default=None,
              help="Width of every layer and of the LSTM (paper 128, beam 256).")
@options_from(TrainConfig)
@click.pass_context
def train_cmd(ctx: click.Context, preset_name: str, config_file: Path | None,
              env_kwargs: dict[str, Any] | None, past_act: bool | None, hidden: int | None,
              **values: Any) -> None:
    """Train an agent; resumes the newest checkpoint in --run-dir (same configuration only)."""
    from .train import train

    cfg = build_config(values, ctx, preset_name, config_file, env_kwargs, past_act, hidden)
    result = train(cfg)
    click.echo(json.dumps({
        "run_dir": str(result.run_dir), "checkpoint": str(result.checkpoint),
        "steps": result.steps, "completed": result.completed, "updates": result.updates,
        "final_test_return": result.final_return_mean,
        "env_steps_per_s_last_epoch": (None if result.steps_per_s is None
                                       else round(result.steps_per_s, 2)),
    }))


@cli.command("evaluate")
@checkpoint_option()
@click.option("--episodes", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--render", is_flag=True, help="Show the episodes (render_mode='human').")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Record the episodes offscreen (render_mode='rgb_array', no display "
              "needed) to a .gif or .npz file.")
@seed_option()
@device_option()
@output_option(required=False, help="Write the report as JSON here.")
def evaluate_cmd(checkpoint: Path, episodes: int, render: bool, video: Path | None, seed: int,
                 device: str, output: Path | None) -> None:
    """Evaluate a checkpoint's deterministic policy on held-out episodes (the 'eval' seed
    stream, run slot --seed: disjoint from every training and test episode)."""
    from physml_core.config import save_json

    from .evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, episodes, seed, render, device, video)
    report = {"checkpoint": str(checkpoint), **result.to_dict()}
    if video is not None:
        report["video"] = str(video)
    if output is not None:
        save_json(output, report)
    click.echo(json.dumps(report))


@cli.command("plot")
@click.argument("groups", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@output_option(required=False, default="learning_curves.png")
@click.option("--metric", default="val/return_mean", show_default=True,
              help="Logged scalar to plot (val/...: the test episodes; train/...: training).")
@click.option("--label", "labels", multiple=True, help="One per GROUP (default: folder names).")
@click.option("--title", default=None)
def plot_cmd(groups: tuple[Path, ...], output: Path, metric: str, labels: tuple[str, ...],
             title: str | None) -> None:
    """Learning curves PNG; each GROUP is a run folder or a folder of runs (seeds)."""
    from .plot import plot_runs

    summary = plot_runs(list(groups), output, metric, list(labels) or None, title)
    click.echo(json.dumps({"output": str(output), "groups": summary}))


@cli.command("bench")
@click.option("--quick", is_flag=True, help="Small sizes (seconds), for smoke tests.")
@click.option("--hidden", type=click.IntRange(min=1), default=None,
              help="Only this layer width (default: the paper's 128 and 64).")
@threads_option()
@click.option("--mode", type=click.Choice(["both", "eager", "compiled"]), default="both",
              show_default=True, help="Update paths to measure (compiled: TD3Config.compile).")
@click.option("--peers", type=click.Choice(["with", "only", "without"]), default="with",
              show_default=True, help="Our TD3 / SB3's TD3 / our paper-setting LSTM-TD3 section.")
@output_option(required=False, help="Also write the JSON here.")
def bench_cmd(quick: bool, hidden: int | None, threads: int | None, mode: str, peers: str,
              output: Path | None) -> None:
    """Throughput figures as JSON (training steps/s, updates/s, replay sampling)."""
    from physml_core.config import save_json

    from .bench import run_benchmark, run_peer_benchmark

    modes = ("eager", "compiled") if mode == "both" else (mode,)
    if peers == "only":
        figures = run_peer_benchmark(quick=quick, threads=threads)
    else:
        figures = run_benchmark(quick=quick, hidden=hidden, threads=threads, modes=modes,
                                peers=peers == "with")
    if output is not None:
        save_json(output, figures)
    click.echo(json.dumps(figures, indent=2))


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":  # python -m lstm_td3.cli
    main()
