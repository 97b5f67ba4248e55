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
    run_dir_option,
)
from physml_core.config import from_dict, load_json, to_dict

from .config import PRESETS, TrainConfig, preset
from .seeding import MAX_RUN_SEED

__all__ = ["cli", "main"]

cli = make_group(
    "lstm-td3",
    "LSTM-TD3: memory-based TD3 for partially observable control (Meng et al. 2021).",
    distribution="lstm-td3",
)

# option name -> (TrainConfig field or "agent.<field>")
_MAP = {
    "env": "env_id", "pomdp": "pomdp", "n_envs": "n_envs", "vectorization": "vectorization",
    "max_episode_steps": "max_episode_steps", "total_steps": "total_steps",
    "steps_per_epoch": "steps_per_epoch", "start_steps": "start_steps",
    "update_after": "update_after", "update_every": "update_every", "utd": "utd_ratio",
    "batch_size": "batch_size", "replay_size": "replay_size", "per": "use_per",
    "per_alpha": "per_alpha", "per_beta0": "per_beta0", "test_episodes": "num_test_episodes",
    "device": "device", "seed": "seed", "threads": "torch_threads",
    "save_replay": "save_replay", "env_kwargs": "env_kwargs",
    "hist_len": "agent.max_hist_len", "gamma": "agent.gamma", "polyak": "agent.polyak",
    "pi_lr": "agent.pi_lr", "q_lr": "agent.q_lr", "act_noise": "agent.act_noise",
    "target_noise": "agent.target_noise", "noise_clip": "agent.noise_clip",
    "policy_delay": "agent.policy_delay", "compile": "agent.compile",
    "cuda_graph": "agent.cuda_graph",
}


def build_config(preset_name: str, config_file: Path | None, options: dict[str, Any],
                 past_act: bool | None = None, hidden: int | None = None) -> TrainConfig:
    """Preset (or JSON file) with the given options laid over it; ``None`` means 'not given'."""
    cfg = from_dict(TrainConfig, load_json(config_file)) if config_file else preset(preset_name)
    if isinstance(options.get("env_kwargs"), str):
        try:
            options = {**options, "env_kwargs": json.loads(options["env_kwargs"])}
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON ({exc})", param_hint="--env-kwargs") from None
        if not isinstance(options["env_kwargs"], dict):
            raise click.BadParameter("must be a JSON object", param_hint="--env-kwargs")
    top: dict[str, Any] = {}
    agent: dict[str, Any] = {}
    for name, value in options.items():
        if value is None or name not in _MAP:
            continue
        target = _MAP[name]
        if target.startswith("agent."):
            agent[target[6:]] = value
        else:
            top[target] = value
    if past_act is not None or hidden is not None:
        for which in ("actor", "critic"):
            net = getattr(cfg.agent, which)
            if past_act is not None:
                net = replace(net, hist_with_past_act=past_act)
            if hidden is not None:
                net = replace(  # same layer structure, every width = hidden
                    net, mem_pre_lstm=tuple(hidden for _ in net.mem_pre_lstm),
                    lstm_hidden=hidden, mem_after_lstm=tuple(hidden for _ in net.mem_after_lstm),
                    cur_feature=tuple(hidden for _ in net.cur_feature),
                    post_comb=tuple(hidden for _ in net.post_comb),
                )
            agent[which] = net
    data = to_dict(cfg)
    data.update({k: (str(v) if isinstance(v, Path) else v) for k, v in top.items()})
    data["agent"].update({k: (to_dict(v) if hasattr(v, "__dataclass_fields__") else v)
                          for k, v in agent.items()})
    return from_dict(TrainConfig, data)


@cli.command("train")
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default="paper",
              show_default=True, help="Starting values: the paper's, or the beam fork's.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), default=None, help="TrainConfig JSON (instead of a preset).")
@click.option("--env", default=None, help="Gymnasium id, e.g. Pendulum-v1, "
              "HalfCheetahBulletEnv-v0, beamenv/PSBPhaseCycle-v0. [preset: Pendulum-v1]")
@click.option("--pomdp", default=None, help="POMDP variant(s), e.g. remove_velocity, "
              "flickering, random_noise, random_sensor_missing, remove_velocity+flickering.")
@click.option("--n-envs", type=click.IntRange(min=1), default=None, help="Parallel envs.")
@click.option("--vectorization", type=click.Choice(["sync", "async"]), default=None)
@click.option("--hist-len", type=click.IntRange(min=0), default=None,
              help="History length L (0 = plain TD3). [5]")
@click.option("--per/--no-per", default=None, help="Prioritized replay (preset: paper off).")
@click.option("--total-steps", type=click.IntRange(min=1), default=None, help="Env steps.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Env steps between evaluations/checkpoints. [4000]")
@click.option("--start-steps", type=click.IntRange(min=0), default=None)
@click.option("--update-after", type=click.IntRange(min=0), default=None)
@click.option("--update-every", type=click.IntRange(min=1), default=None)
@click.option("--utd", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Gradient updates per env step. [1]")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--replay-size", type=click.IntRange(min=1), default=None)
@click.option("--per-alpha", type=click.FloatRange(0, 1), default=None)
@click.option("--per-beta0", type=click.FloatRange(0, 1), default=None)
@click.option("--gamma", type=click.FloatRange(0, 1), default=None)
@click.option("--polyak", type=click.FloatRange(0, 1, max_open=True), default=None)
@click.option("--pi-lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--q-lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--act-noise", type=click.FloatRange(min=0), default=None)
@click.option("--target-noise", type=click.FloatRange(min=0), default=None)
@click.option("--noise-clip", type=click.FloatRange(min=0), default=None)
@click.option("--policy-delay", type=click.IntRange(min=1), default=None)
@click.option("--past-act/--no-past-act", default=None,
              help="Feed past actions to the memory branch.")
@click.option("--hidden", type=click.IntRange(min=1), default=None,
              help="Width of every layer and of the LSTM (paper 128, beam 256).")
@click.option("--compile/--no-compile", "compile", default=None,
              help="torch.compile the losses and acting (inductor; first updates compile for "
              "tens of seconds). [off]")
@click.option("--cuda-graph/--no-cuda-graph", "cuda_graph", default=None,
              help="On CUDA: replay the whole update as captured CUDA graphs. [off]")
@click.option("--max-episode-steps", type=click.IntRange(min=1), default=None)
@click.option("--env-kwargs", default=None, metavar="JSON",
              help='Keyword arguments for gymnasium.make, e.g. \'{"n_bins": 64}\'.')
@click.option("--test-episodes", type=click.IntRange(min=1), default=None)
@click.option("--threads", type=click.IntRange(min=0), default=None,
              help="torch CPU threads (0 = torch default). [1]")
@click.option("--save-replay/--no-save-replay", default=None,
              help="Put the replay buffer into checkpoints (needed to resume).")
@click.option("--no-resume", is_flag=True, help="Start afresh even if --run-dir has checkpoints.")
@run_dir_option()
@device_option(default=None)
@click.option("--seed", type=click.IntRange(0, MAX_RUN_SEED), default=None,
              help="Run seed; every random stream of the run derives from it "
              "(lstm_td3.seeding). [0]")
def train_cmd(preset_name: str, config_file: Path | None, past_act: bool | None,
              hidden: int | None, no_resume: bool, run_dir: Path | None, **options: Any) -> None:
    """Train an agent; resumes from the newest checkpoint in --run-dir."""
    from .train import train

    cfg = build_config(preset_name, config_file, options, past_act, hidden)
    result = train(cfg, run_dir, resume=not no_resume)
    click.echo(json.dumps({
        "run_dir": str(result.run_dir), "steps": result.steps, "updates": result.updates,
        "final_test_return": result.final_return_mean,
        "env_steps_per_s_last_epoch": round(result.steps_per_s, 2),
    }))


@cli.command("evaluate")
@checkpoint_option()
@click.option("--episodes", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--render", is_flag=True, help="Show the episodes (render_mode='human').")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Record the episodes offscreen (render_mode='rgb_array', no display "
              "needed) to a .gif or .npz file.")
@click.option("--seed", type=click.IntRange(0, MAX_RUN_SEED), default=0, show_default=True,
              help="Evaluation seed: episodes come from the held-out 'eval' seed stream, "
              "disjoint from every training and test seed.")
@device_option(default="cpu")
@output_option(required=False, help="Write the report as JSON here.")
def evaluate_cmd(checkpoint: Path, episodes: int, render: bool, video: Path | None, seed: int,
                 device: str, output: Path | None) -> None:
    """Evaluate a checkpoint's deterministic policy."""
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
@click.option("--metric", default="test/return_mean", show_default=True)
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
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: all cores).")
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
