"""The training loop: collect with a vector env, store, update, evaluate, checkpoint.

Per vector step every env contributes one transition (same-step autoreset, the true final
observation of an episode is stored, truncation is not terminal).  Gradient updates follow the
paper's schedule: nothing before ``update_after`` env steps, then every ``update_every`` env steps
as many updates as env steps were collected since, times ``utd_ratio``.  Every
``steps_per_epoch`` env steps the deterministic policy is evaluated and a checkpoint (agent,
optimizers, replay buffer, counters and RNG states) is written.

Exact resume without cutting episodes: every training episode is seeded from the run's
``train_env`` seed stream (:mod:`lstm_td3.seeding`, :class:`~lstm_td3.envs.EpisodeSeeds`), and a
checkpoint holds, per env, the running episode's counter, its actions so far, its return and
the acting history.  A resumed run re-creates each running episode from its seed and replays its
actions (rewards discarded), checks that it arrives at the stored observation, and continues bit
for bit like the uninterrupted run.  The episodes are never cut at a checkpoint (unless
``reset_at_checkpoint``, the earlier behaviour, is set).  An env that does not reproduce its
episode from seed and actions gets a :class:`ResumeNotExactWarning` and new episodes.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_core.checkpoint import checkpoint_path, latest, load_checkpoint, save_checkpoint
from physml_core.config import from_dict, to_dict
from physml_core.device import resolve_device, seed_everything
from physml_core.errors import CheckpointError, PhysmlWarning
from physml_core.logging import RunLogger, default_run_dir, get_logger, progress

from .agent import LSTMTD3, stats_dict
from .buffers import PrioritizedReplayBuffer, ReplayBuffer, beta_schedule
from .config import TrainConfig
from .envs import final_observations, make_vector_env
from .evaluate import run_episodes
from .history import ActingHistory
from .seeding import stream_seed

__all__ = ["PACKAGE", "ResumeConfigWarning", "ResumeNotExactWarning", "TrainResult", "load_agent",
           "train"]

PACKAGE = "lstm_td3"
MODEL_NAME = "lstm_td3"
_log = get_logger("lstm_td3.train")


class ResumeConfigWarning(PhysmlWarning):
    """Resuming a run whose stored configuration differs from the one given."""


class ResumeNotExactWarning(PhysmlWarning):
    """A resumed run could not re-enter the episodes running at the checkpoint (the env did not
    reproduce them from their seeds and actions, or the checkpoint predates episode seeding);
    it starts new episodes instead."""


@dataclass
class TrainResult:
    """Summary of a finished :func:`train` call."""

    run_dir: Path
    steps: int
    final_return_mean: float | None
    steps_per_s: float
    updates: int


def _build(cfg: TrainConfig, obs_dim: int, act_dim: int, low, high, device) -> tuple:
    agent = LSTMTD3(obs_dim, act_dim, low, high, cfg.agent, device=device,
                    seed=stream_seed("agent", cfg.seed))
    kwargs = dict(
        obs_dim=obs_dim,
        act_dim=act_dim,
        capacity=cfg.replay_size,
        n_envs=cfg.n_envs,
        max_hist_len=cfg.agent.max_hist_len,
        seed=stream_seed("replay", cfg.seed),
    )
    if cfg.use_per:
        buffer: ReplayBuffer = PrioritizedReplayBuffer(
            **kwargs, alpha=cfg.per_alpha, eps=cfg.per_eps
        )
    else:
        buffer = ReplayBuffer(**kwargs)
    return agent, buffer


def load_agent(checkpoint: str | Path, device: str = "cpu") -> tuple[LSTMTD3, TrainConfig]:
    """Rebuild the agent (weights only) and its :class:`TrainConfig` from a checkpoint."""
    ckpt = load_checkpoint(checkpoint, package=PACKAGE, model_name=MODEL_NAME)
    cfg = from_dict(TrainConfig, ckpt.config)
    spaces = ckpt.extra["spaces"]
    agent = LSTMTD3(
        int(spaces["obs_dim"]),
        int(spaces["act_dim"]),
        np.asarray(spaces["act_low"]),
        np.asarray(spaces["act_high"]),
        cfg.agent,
        device=resolve_device(device),
        seed=cfg.seed,
    )
    ckpt.restore(model=agent.modules(), rng=False)
    return agent, cfg


def _save(run_dir: Path, cfg: TrainConfig, agent: LSTMTD3, buffer: ReplayBuffer, step: int,
          counters: dict[str, Any], spaces: dict[str, Any], running: dict[str, Any]) -> Path:
    import json

    extra: dict[str, Any] = {
        "spaces": spaces,
        "running": running,
        "agent": {
            "n_updates": agent.n_updates,
            "rng": json.dumps(agent.rng.bit_generator.state),
            "gen": agent.gen.get_state(),
        },
        "counters": counters,
    }
    if cfg.save_replay:
        extra["replay"] = buffer.state_dict()
    path = save_checkpoint(
        checkpoint_path(run_dir, step),
        package=PACKAGE,
        model_name=MODEL_NAME,
        model=agent.modules(),
        optimizer=agent.optimizers(),
        step=step,
        config=to_dict(cfg),
        extra=extra,
    )
    old = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    for stale in old[: max(0, len(old) - cfg.keep_checkpoints)]:
        stale.unlink(missing_ok=True)
    return path


def _restore(ckpt, agent: LSTMTD3, buffer: ReplayBuffer) -> dict[str, Any]:
    import json

    try:
        ckpt.restore(model=agent.modules(), optimizer=agent.optimizers(), rng=True)
    except (ValueError, RuntimeError, KeyError) as exc:
        # e.g. a hist-0 run written with a memory branch (before it was folded away): its
        # weights load (evaluation works), its optimizer states do not fit the smaller network
        raise CheckpointError(
            f"{ckpt.path}: cannot resume this run with the current network layout ({exc}); "
            "it can still be evaluated"
        ) from None
    agent.fix_optimizer_flags()
    state = ckpt.extra["agent"]
    agent.n_updates = int(state["n_updates"])
    agent.rng.bit_generator.state = json.loads(state["rng"])
    agent.gen.set_state(state["gen"])
    if "replay" not in ckpt.extra:
        raise CheckpointError(
            f"{ckpt.path}: checkpoint holds no replay buffer (save_replay was off); "
            "it can be evaluated but not resumed"
        )
    replay = {k: (v.numpy() if isinstance(v, torch.Tensor) else v)
              for k, v in ckpt.extra["replay"].items()}
    buffer.load_state_dict(replay)
    return dict(ckpt.extra["counters"])


def _resolve_config(cfg: TrainConfig, ckpt) -> TrainConfig:
    stored = from_dict(TrainConfig, ckpt.config)
    mine, theirs = to_dict(cfg), to_dict(stored)
    differ = sorted(k for k in mine if k != "total_steps" and mine[k] != theirs[k])
    if differ:
        warnings.warn(
            f"resuming {ckpt.path.parent.parent}: keeping its stored configuration; "
            f"given values ignored for {differ}",
            ResumeConfigWarning,
            stacklevel=3,
        )
    stored.total_steps = cfg.total_steps
    return stored


def train(
    config: TrainConfig,
    run_dir: str | Path | None = None,
    resume: bool = True,
    show_progress: bool | None = None,
    tensorboard: bool = True,
    stop_at: int | None = None,
) -> TrainResult:
    """Train LSTM-TD3 (or TD3 with ``max_hist_len=0``) as configured; resume from the newest
    checkpoint in ``run_dir`` when there is one and ``resume`` is true.

    ``stop_at`` ends the call after that many env steps (as if interrupted there; schedules still
    follow ``config.total_steps``); a later call on the same ``run_dir`` continues.
    """
    cfg = config
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(PACKAGE)
    ckpt = None
    found = latest(run_dir) if resume else None
    if found is not None:
        ckpt = load_checkpoint(found, package=PACKAGE, model_name=MODEL_NAME)
        cfg = _resolve_config(cfg, ckpt)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    running = None
    restore = None
    if ckpt is not None:
        running = ckpt.extra.get("running")
        if running is not None:
            running = {k: (v.numpy() if isinstance(v, torch.Tensor) else v)
                       for k, v in running.items()}
            restore = [(int(running["episode"][i]),
                        running["actions"][i, : int(running["ep_len"][i])])
                       for i in range(cfg.n_envs)]
        else:  # a checkpoint written before episodes were seeded: new episodes
            base = int(ckpt.extra["counters"]["episodes"]) + cfg.n_envs
            restore = [(base, np.zeros((0, 1), np.float32))] * cfg.n_envs
    venv = make_vector_env(
        cfg.env_id, cfg.n_envs, cfg.vectorization, cfg.pomdp or None, None,
        cfg.max_episode_steps, env_kwargs=cfg.env_kwargs,
        episode_seeds=("train_env", cfg.seed), restore=restore,
    )
    try:
        obs_space, act_space = venv.single_observation_space, venv.single_action_space
        obs_dim, act_dim = int(obs_space.shape[0]), int(act_space.shape[0])
        spaces = {"obs_dim": obs_dim, "act_dim": act_dim,
                  "act_low": np.asarray(act_space.low, dtype=np.float32),
                  "act_high": np.asarray(act_space.high, dtype=np.float32)}
        agent, buffer = _build(cfg, obs_dim, act_dim, act_space.low, act_space.high, device)
        counters = {"step": 0, "pending": 0.0, "epoch": 0, "episodes": 0}
        if ckpt is not None:
            counters = _restore(ckpt, agent, buffer)
            _log.info("resumed %s at step %d", run_dir, counters["step"])
        if cfg.device_replay and torch.device(device).type == "cuda":
            buffer.attach_device(device)  # windows gathered on the GPU
        with RunLogger(run_dir, config=cfg, tensorboard=tensorboard) as logger:
            return _loop(cfg, venv, agent, buffer, logger, counters, spaces, show_progress,
                         stop_at, running, restore)
    finally:
        venv.close()


def _loop(cfg: TrainConfig, venv, agent: LSTMTD3, buffer: ReplayBuffer, logger: RunLogger,
          counters: dict[str, Any], spaces: dict[str, Any], show_progress: bool | None,
          stop_at: int | None = None, running: dict[str, Any] | None = None,
          restore: list | None = None) -> TrainResult:
    n = cfg.n_envs
    step = int(counters["step"])
    pending = float(counters["pending"])
    epoch = int(counters["epoch"])
    n_episodes = int(counters["episodes"])
    hist = ActingHistory(n, agent.obs_dim, agent.act_dim, cfg.agent.max_hist_len)
    ep_ret = np.zeros(n)
    ep_len = np.zeros(n, dtype=np.int64)
    # per env: the counter of its running episode (its seed) and the actions taken in it so far
    episode = np.zeros(n, dtype=np.int64) if restore is None else np.array([r[0] for r in restore])
    ep_actions: list[list[np.ndarray]] = [[] for _ in range(n)]
    obs, _ = venv.reset()  # EpisodeSeeds: seeded from the stream (and re-entered on resume)
    if running is not None and np.array_equal(np.asarray(obs, np.float32), running["obs"]):
        hist.obs[:], hist.act[:] = running["hist_obs"], running["hist_act"]
        hist.length[:] = running["hist_len"]
        ep_ret[:], ep_len[:] = running["ep_ret"], running["ep_len"]
        ep_actions = [list(running["actions"][i, : ep_len[i]]) for i in range(n)]
    else:
        if running is not None or restore is not None:
            warnings.warn(
                "resumed run: the envs did not reproduce the episodes running at the checkpoint "
                "(or the checkpoint predates episode seeding); starting new episodes",
                ResumeNotExactWarning, stacklevel=3,
            )
            if running is not None:  # the re-entered episodes are off: begin fresh ones
                obs, _ = venv.reset()
                episode += 1
        buffer.end_episodes()
    stats: dict[str, list[float]] = {"q_loss": [], "pi_loss": [], "q1": [], "ep_ret": []}
    final_return = None
    t_epoch = time.perf_counter()
    steps_epoch = updates_epoch = 0
    sps = 0.0
    disable = None if show_progress is None else not show_progress
    bar = progress(total=cfg.total_steps, desc="lstm-td3 train", disable=disable, unit="step")
    bar.update(step)
    try:
        end = cfg.total_steps if stop_at is None else min(stop_at, cfg.total_steps)
        while step < end:
            if step < cfg.start_steps:
                act = agent.random_action(n)
            else:
                act = agent.act(obs, hist, cfg.agent.act_noise)
            nxt, rew, term, trunc, info = venv.step(act)
            term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
            done = term | trunc
            buffer.add(obs, act, rew, final_observations(nxt, done, info), term, trunc)
            hist.push(obs, act)
            hist.reset(done)
            ep_ret += rew
            ep_len += 1
            for i in range(n):
                if done[i]:
                    ep_actions[i].clear()
                else:
                    ep_actions[i].append(act[i].copy())
            episode += done
            for i in np.flatnonzero(done):
                n_episodes += 1
                stats["ep_ret"].append(float(ep_ret[i]))
                logger.log_scalars(step + n, {"train/episode_return": ep_ret[i],
                                              "train/episode_length": ep_len[i]})
            ep_ret[done], ep_len[done] = 0.0, 0
            obs = nxt
            prev, step = step, step + n
            steps_epoch += n
            bar.update(n)
            # transitions with 0-based index >= update_after (the paper's `t >= update_after`)
            fresh = min(n, max(0, step - cfg.update_after))
            if fresh:
                pending += fresh * cfg.utd_ratio
                if step // cfg.update_every > prev // cfg.update_every:
                    todo = int(pending)
                    pending -= todo
                    beta = beta_schedule(step / cfg.total_steps, cfg.per_beta0)
                    sample = buffer.sample if buffer.device is None else buffer.sample_device
                    block: list[torch.Tensor] = []
                    late: list[tuple[np.ndarray, torch.Tensor]] = []
                    for _ in range(todo):
                        batch = sample(cfg.batch_size, beta)
                        # no host sync per update: statistics stay on the device until the
                        # end of the block
                        out = agent.update(batch, return_td=cfg.use_per, to_host=False)
                        block.append(out["stats"])
                        if cfg.use_per and cfg.per_batch_priorities:
                            late.append((batch.indices, out["td_error"]))
                        elif cfg.use_per:
                            buffer.update_priorities(batch.indices, out["td_error"])
                    if late:  # one device-to-host copy for the block's priorities
                        tds = torch.stack([td for _, td in late]).cpu().numpy()
                        for (indices, _), td in zip(late, tds, strict=True):
                            buffer.update_priorities(indices, td)
                    if block:
                        for values in torch.stack(block).cpu().tolist():
                            out = stats_dict(values)
                            stats["q_loss"].append(out["q_loss"])
                            stats["q1"].append(out["q1"])
                            if out["pi_loss"] is not None:
                                stats["pi_loss"].append(out["pi_loss"])
                    updates_epoch += todo
            if step // cfg.steps_per_epoch > prev // cfg.steps_per_epoch or step >= cfg.total_steps:
                epoch += 1
                elapsed = time.perf_counter() - t_epoch
                sps = steps_epoch / max(elapsed, 1e-9)
                result = run_episodes(agent, cfg.env_id, cfg.num_test_episodes,
                                      cfg.seed, cfg.pomdp or None, cfg.max_episode_steps,
                                      env_kwargs=cfg.env_kwargs, stream="test")
                final_return = result.mean
                scalars = {
                    "test/return_mean": result.mean,
                    "test/return_std": result.std,
                    "test/episode_length": float(np.mean(result.lengths)),
                    "perf/env_steps_per_s": sps,
                    "perf/updates_per_s": updates_epoch / max(elapsed, 1e-9),
                    "epoch": epoch,
                    "episodes": n_episodes,
                    "updates": agent.n_updates,
                }
                for key, name in (("q_loss", "loss/q"), ("pi_loss", "loss/pi"), ("q1", "q/q1_mean"),
                                  ("ep_ret", "train/return_mean")):
                    if stats[key]:
                        scalars[name] = float(np.mean(stats[key]))
                logger.log_scalars(step, scalars)
                bar.set_postfix(sps=f"{sps:.0f}", test=f"{result.mean:.1f}")
                _log.info("step %d epoch %d: test return %.1f +- %.1f, %.0f env steps/s",
                          step, epoch, result.mean, result.std, sps)
                stats = {k: [] for k in stats}
                if cfg.reset_at_checkpoint:
                    # the earlier behaviour: cut the running episodes (stored as truncated, so
                    # they still bootstrap); not needed for exact resume
                    obs, _ = venv.reset()
                    episode += 1
                    buffer.end_episodes()
                    hist.reset()
                    ep_ret[:], ep_len[:] = 0.0, 0
                    ep_actions = [[] for _ in range(n)]
                counters = {"step": step, "pending": pending, "epoch": epoch,
                            "episodes": n_episodes}
                _save(logger.run_dir, cfg, agent, buffer, step, counters, spaces,
                      _running(obs, episode, ep_actions, ep_ret, ep_len, hist, agent.act_dim))
                t_epoch = time.perf_counter()
                steps_epoch = updates_epoch = 0
    finally:
        bar.close()
    return TrainResult(logger.run_dir, step, final_return, sps, agent.n_updates)


def _running(obs: np.ndarray, episode: np.ndarray, ep_actions: list[list[np.ndarray]],
             ep_ret: np.ndarray, ep_len: np.ndarray, hist: ActingHistory,
             act_dim: int) -> dict[str, Any]:
    """The state of the running episodes for a checkpoint (arrays only)."""
    n = len(ep_actions)
    actions = np.zeros((n, max(1, int(ep_len.max(initial=0))), act_dim), dtype=np.float32)
    for i, acts in enumerate(ep_actions):
        if acts:
            actions[i, : len(acts)] = np.stack(acts)
    return {"obs": np.asarray(obs, dtype=np.float32).copy(), "episode": episode.copy(),
            "actions": actions, "ep_len": ep_len.copy(), "ep_ret": ep_ret.copy(),
            "hist_obs": hist.obs.copy(), "hist_act": hist.act.copy(),
            "hist_len": hist.length.copy()}
