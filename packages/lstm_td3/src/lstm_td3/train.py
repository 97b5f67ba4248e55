"""LSTM-TD3 training as a :class:`~physml_core.training.TrainingJob`: collect with a vector env,
store, update, test.

The shared layer (:func:`physml_core.training.fit`) owns the run folder, the resume policy,
checkpoints, logs, the progress bar and the time limit; this module is the algorithm.  One
step is one *environment* step summed over the ``n_envs`` envs, and one :meth:`train_step` call
runs an epoch of ``steps_per_epoch`` of them; the test episodes (:meth:`validate`) and a
checkpoint follow every epoch.

Per vector step every env contributes one transition (same-step autoreset, the true final
observation of an episode is stored, truncation is not terminal).  Gradient updates follow the
paper's schedule: nothing before ``update_after`` env steps, then every ``update_every`` env steps
as many updates as env steps were collected since, times ``utd_ratio``.

Exact resume without cutting episodes: every training episode is seeded from the run's
``train_env`` seed stream (:mod:`lstm_td3.seeding`, :class:`~lstm_td3.envs.EpisodeSeeds`), and a
checkpoint holds, per env, the running episode's counter, its actions so far, its return and
the acting history (besides the agent, its optimizers and generators, and the replay buffer).
A resumed run re-creates each running episode from its seed and replays its actions (rewards
discarded), checks that it arrives at the stored observation, and continues bit for bit like
the uninterrupted run.  The episodes are never cut at a checkpoint (unless
``reset_at_checkpoint``, the earlier behaviour, is set).  An env that does not reproduce its
episode from seed and actions gets a :class:`ResumeNotExactWarning` and new episodes.  A time
limit (or ``stop_at``) inside an epoch stops at once: the checkpoint keeps the epoch's first
step in its name, holds the state reached, and the resumed run finishes that epoch.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium.spaces import Box

from physml_core import training
from physml_core.checkpoint import Checkpoint
from physml_core.distributed import DistContext
from physml_core.errors import CheckpointError, ConfigError, PhysmlWarning
from physml_core.logging import get_logger
from physml_core.training import Clock, StepUnit, TrainingJob, TrainState, fit

from .agent import stats_dict
from .artifacts import (
    MODEL_NAME,
    PACKAGE,
    ActionSpaces,
    build_agent,
    learner_state,
    load_agent,
    restore_learner_state,
)
from .buffers import PrioritizedReplayBuffer, ReplayBuffer, beta_schedule
from .config import TrainConfig
from .envs import final_observations, make_vector_env
from .evaluate import run_episodes
from .history import ActingHistory
from .seeding import stream_seed

__all__ = ["LSTMTD3Job", "ResumeNotExactWarning", "TrainResult", "load_agent", "train"]

_log = get_logger("lstm_td3.train")


class ResumeNotExactWarning(PhysmlWarning):
    """A resumed run could not re-enter the episodes running at the checkpoint (the env did not
    reproduce them from their seeds and actions, or the checkpoint predates episode seeding);
    it starts new episodes instead."""


def _numpy(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's stored arrays (tensors there) back as NumPy arrays."""
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


class LSTMTD3Job(TrainingJob[TrainConfig]):
    """LSTM-TD3 (or TD3 with ``max_hist_len=0``) for :func:`~physml_core.training.fit`."""

    package: ClassVar[str] = PACKAGE
    step_unit: ClassVar[StepUnit] = "env_step"
    #: a resumed session may run longer, use other threads or stop elsewhere
    resume_free: ClassVar[frozenset[str]] = frozenset({"total_steps", "threads", "stop_at"})
    #: a checkpoint written inside an epoch holds the position reached (counters, running
    #: episodes, replay), and the resumed run finishes that epoch exactly
    resumes_inside_step: ClassVar[bool] = True

    def __init__(self, config: TrainConfig, ctx: DistContext) -> None:
        super().__init__(config, ctx)
        if ctx.is_distributed:
            raise ConfigError("lstm-td3 trains in one process (an off-policy learner collects "
                              "its own data); run it without torchrun")
        self.steps_per_call = config.steps_per_epoch

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    @property
    def total_steps(self) -> int:
        return self.config.total_steps

    # ------------------------------------------------------------------ set-up
    def setup(self, resume: Checkpoint | None) -> None:
        cfg = self.config
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        n = cfg.n_envs
        running: dict[str, Any] | None = None
        restore: list[tuple[int, np.ndarray]] | None = None
        if resume is not None:
            if "replay" not in resume.extra:
                raise CheckpointError(
                    f"{resume.path}: checkpoint holds no replay buffer (save_replay was off); "
                    "it can be evaluated but not resumed")
            if resume.extra.get("running") is not None:
                running = _numpy(resume.extra["running"])
                restore = [(int(running["episode"][i]),
                            running["actions"][i, : int(running["ep_len"][i])])
                           for i in range(n)]
            else:  # a checkpoint written before episodes were seeded: new episodes
                base = int(resume.extra["counters"]["episodes"]) + n
                restore = [(base, np.zeros((0, 1), np.float32))] * n
        self.venv = make_vector_env(
            cfg.env_id, n, cfg.vectorization, cfg.pomdp, None, cfg.max_episode_steps,
            env_kwargs=cfg.env_kwargs, episode_seeds=("train_env", cfg.seed), restore=restore)
        obs_space, act_space = self.venv.single_observation_space, self.venv.single_action_space
        if not isinstance(obs_space, Box) or not isinstance(act_space, Box):
            self.venv.close()
            raise ValueError(f"{cfg.env_id}: LSTM-TD3 needs Box observation and action spaces, "
                             f"got {type(obs_space).__name__} and {type(act_space).__name__}")
        self.spaces = ActionSpaces(int(obs_space.shape[0]), int(act_space.shape[0]),
                                   np.asarray(act_space.low, dtype=np.float32),
                                   np.asarray(act_space.high, dtype=np.float32))
        device = self.ctx.device
        self.agent = build_agent(cfg, self.spaces, device)
        kwargs: dict[str, Any] = dict(
            obs_dim=self.spaces.obs_dim, act_dim=self.spaces.act_dim, capacity=cfg.replay_size,
            n_envs=n, max_hist_len=cfg.agent.max_hist_len, seed=stream_seed("replay", cfg.seed))
        self.buffer: ReplayBuffer = (
            PrioritizedReplayBuffer(**kwargs, alpha=cfg.per_alpha, eps=cfg.per_eps)
            if cfg.use_per else ReplayBuffer(**kwargs))
        counters: dict[str, Any] = {"step": 0, "pending": 0.0, "epoch": 0, "episodes": 0}
        if resume is not None:
            restore_learner_state(self.agent, resume.extra["agent"])
            self.buffer.load_state_dict(_numpy(resume.extra["replay"]))
            counters = dict(resume.extra["counters"])
        if cfg.device_replay and device.type == "cuda":
            self.buffer.attach_device(device)  # windows gathered on the GPU
        self.env_step = int(counters["step"])
        self.pending = float(counters["pending"])
        self.epoch = int(counters["epoch"])
        self.n_episodes = int(counters["episodes"])
        self.hist = ActingHistory(n, self.spaces.obs_dim, self.spaces.act_dim,
                                  cfg.agent.max_hist_len)
        self.ep_ret = np.zeros(n)
        self.ep_len = np.zeros(n, dtype=np.int64)
        # per env: the counter of its running episode (its seed) and its actions so far
        self.episode = (np.zeros(n, dtype=np.int64) if restore is None
                        else np.array([r[0] for r in restore], dtype=np.int64))
        self.ep_actions: list[list[np.ndarray]] = [[] for _ in range(n)]
        self._running_at_resume = running
        self._resumed = resume is not None
        self.obs: np.ndarray | None = None
        self._sps = 0.0

    def _enter_episodes(self) -> None:
        """First call of a session (``fit`` has restored weights, optimizers and the global
        RNGs by now): reset the envs, re-entering the episodes running at the checkpoint."""
        self.agent.fix_optimizer_flags()
        obs, _ = self.venv.reset()  # EpisodeSeeds: seeded from the stream (and re-entered)
        running = self._running_at_resume
        if running is not None and np.array_equal(np.asarray(obs, np.float32), running["obs"]):
            self.hist.obs[:], self.hist.act[:] = running["hist_obs"], running["hist_act"]
            self.hist.length[:] = running["hist_len"]
            self.ep_ret[:], self.ep_len[:] = running["ep_ret"], running["ep_len"]
            self.ep_actions = [list(running["actions"][i, : self.ep_len[i]])
                               for i in range(len(self.ep_actions))]
        else:
            if self._resumed:
                warnings.warn(
                    "resumed run: the envs did not reproduce the episodes running at the "
                    "checkpoint (or the checkpoint predates episode seeding); starting new "
                    "episodes", ResumeNotExactWarning, stacklevel=2)
                if running is not None:  # the re-entered episodes are off: begin fresh ones
                    obs, _ = self.venv.reset()
                    self.episode += 1
            self.buffer.end_episodes()
        self.obs = np.asarray(obs)

    def state(self) -> TrainState:
        return TrainState(models=self.agent.modules(), optimizers=self.agent.optimizers())

    # ------------------------------------------------------------------ one epoch
    def train_step(self, step: int, clock: Clock) -> dict[str, float]:
        """Collect and learn up to env step ``min(step + steps_per_epoch, total_steps)`` (the
        first vector step at or past it), or until the time limit or ``stop_at``."""
        if self.obs is None:
            self._enter_episodes()
        cfg = self.config
        target = min(step + self.steps_per_call, self.total_steps)
        limit = target if cfg.stop_at is None else min(target, cfg.stop_at)
        stats: dict[str, list[float]] = {k: [] for k in ("q_loss", "pi_loss", "q1", "ep_ret",
                                                           "ep_len")}
        start, updates0, t0 = self.env_step, self.agent.n_updates, time.perf_counter()
        while self.env_step < limit and not clock.expired():
            self._vector_step(stats)
        elapsed = max(time.perf_counter() - t0, 1e-9)
        if self.env_step < target:  # stopped inside the epoch: fit checkpoints, resume ends it
            clock.interrupted = True
            return {}
        self.epoch += 1
        self._sps = (self.env_step - start) / elapsed
        if cfg.reset_at_checkpoint:
            # the earlier behaviour: cut the running episodes (stored as truncated, so they
            # still bootstrap); not needed for exact resume
            self.obs, _ = self.venv.reset()
            self.episode += 1
            self.buffer.end_episodes()
            self.hist.reset()
            self.ep_ret[:], self.ep_len[:] = 0.0, 0
            self.ep_actions = [[] for _ in self.ep_actions]
        out = {"env_steps_per_s": self._sps,
               "updates_per_s": (self.agent.n_updates - updates0) / elapsed,
               "updates": float(self.agent.n_updates), "episodes": float(self.n_episodes),
               "epoch": float(self.epoch)}
        for key, name in (("q_loss", "q_loss"), ("pi_loss", "pi_loss"), ("q1", "q1_mean"),
                          ("ep_ret", "episode_return"), ("ep_len", "episode_length")):
            if stats[key]:
                out[name] = float(np.mean(stats[key]))
        return out

    def _vector_step(self, stats: dict[str, list[float]]) -> None:
        """One step of every env, its transitions stored, and the updates that fall due."""
        cfg, agent, buffer, n = self.config, self.agent, self.buffer, self.config.n_envs
        obs = self.obs
        assert obs is not None
        if self.env_step < cfg.start_steps:
            act = agent.random_action(n)
        else:
            act = agent.act(obs, self.hist, cfg.agent.act_noise)
        nxt, rew, term, trunc, info = self.venv.step(act)
        term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
        done = term | trunc
        buffer.add(obs, act, rew, final_observations(nxt, done, info), term, trunc)
        self.hist.push(obs, act)
        self.hist.reset(done)
        self.ep_ret += rew
        self.ep_len += 1
        for i in range(n):
            if done[i]:
                self.ep_actions[i].clear()
            else:
                self.ep_actions[i].append(act[i].copy())
        self.episode += done
        for i in np.flatnonzero(done).tolist():
            self.n_episodes += 1
            stats["ep_ret"].append(float(self.ep_ret[i]))
            stats["ep_len"].append(float(self.ep_len[i]))
        self.ep_ret[done], self.ep_len[done] = 0.0, 0
        self.obs = np.asarray(nxt)
        prev = self.env_step
        self.env_step += n
        step = self.env_step
        # transitions with 0-based index >= update_after (the paper's `t >= update_after`)
        fresh = min(n, max(0, step - cfg.update_after))
        if not fresh:
            return
        self.pending += fresh * cfg.utd_ratio
        if step // cfg.update_every <= prev // cfg.update_every:
            return
        todo = int(self.pending)
        self.pending -= todo
        beta = beta_schedule(step / cfg.total_steps, cfg.per_beta0)
        sample = buffer.sample if buffer.device is None else buffer.sample_device
        block: list[torch.Tensor] = []
        late: list[tuple[np.ndarray, torch.Tensor]] = []
        for _ in range(todo):
            batch = sample(cfg.batch_size, beta)
            # no host sync per update: statistics stay on the device until the block's end
            result = agent.update(batch, return_td=cfg.use_per, to_host=False)
            block.append(result["stats"])
            if cfg.use_per and cfg.per_batch_priorities:
                late.append((batch.indices, result["td_error"]))
            elif cfg.use_per:
                buffer.update_priorities(batch.indices, result["td_error"])
        if late:  # one device-to-host copy for the block's priorities
            tds = torch.stack([td for _, td in late]).cpu().numpy()
            for (indices, _), td in zip(late, tds, strict=True):
                buffer.update_priorities(indices, td)
        for values in torch.stack(block).cpu().tolist() if block else []:
            out = stats_dict(values)
            stats["q_loss"].append(out["q_loss"])
            stats["q1"].append(out["q1"])
            if out["pi_loss"] is not None:
                stats["pi_loss"].append(out["pi_loss"])

    # ------------------------------------------------------------------ test, checkpoint
    def validate(self, step: int) -> dict[str, float]:
        """``num_test_episodes`` deterministic episodes from the ``test`` seed stream."""
        cfg = self.config
        result = run_episodes(self.agent, cfg.env_id, cfg.num_test_episodes, cfg.seed,
                              cfg.pomdp, cfg.max_episode_steps, env_kwargs=cfg.env_kwargs,
                              stream="test")
        _log.info("env step %d, epoch %d: test return %.1f +- %.1f, %.0f env steps/s",
                  self.env_step, self.epoch, result.mean, result.std, self._sps)
        return {"return_mean": result.mean, "return_std": result.std,
                "episode_length": float(np.mean(result.lengths))}

    def extra_state(self, final: bool) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "spaces": self.spaces.to_extra(),
            "agent": learner_state(self.agent),
            "counters": {"step": self.env_step, "pending": self.pending, "epoch": self.epoch,
                         "episodes": self.n_episodes},
            "running": self._running(),
        }
        if self.config.save_replay:
            extra["replay"] = self.buffer.state_dict()
        return extra

    def close(self) -> None:
        if hasattr(self, "venv"):
            self.venv.close()

    def _running(self) -> dict[str, np.ndarray]:
        """The state of the running episodes (arrays only)."""
        n, act_dim = len(self.ep_actions), self.spaces.act_dim
        actions = np.zeros((n, max(1, int(self.ep_len.max(initial=0))), act_dim), np.float32)
        for i, acts in enumerate(self.ep_actions):
            if acts:
                actions[i, : len(acts)] = np.stack(acts)
        obs = self.obs if self.obs is not None else np.zeros((n, self.spaces.obs_dim))
        return {"obs": np.asarray(obs, dtype=np.float32).copy(), "episode": self.episode.copy(),
                "actions": actions, "ep_len": self.ep_len.copy(), "ep_ret": self.ep_ret.copy(),
                "hist_obs": self.hist.obs.copy(), "hist_act": self.hist.act.copy(),
                "hist_len": self.hist.length.copy()}


@dataclass
class TrainResult(training.TrainResult):
    """:class:`physml_core.training.TrainResult` with the RL figures of the last epoch read
    from its metrics (None where the session trained no epoch)."""

    @property
    def steps(self) -> int:
        """Env steps done (the run's step)."""
        return self.step

    @property
    def updates(self) -> int | None:
        value = self.metrics.get("train/updates")
        return None if value is None else int(value)

    @property
    def final_return_mean(self) -> float | None:
        """Mean return of the last test episodes."""
        return self.metrics.get("val/return_mean")

    @property
    def steps_per_s(self) -> float | None:
        """Env steps per second of the last epoch (collection and updates; no tests)."""
        return self.metrics.get("train/env_steps_per_s")


def train(config: TrainConfig, run_dir: str | Path | None = None, *,
          resume: bool | None = None, tensorboard: bool | None = None,
          stop_at: int | None = None, show_progress: bool = True) -> TrainResult:
    """Train as configured through :func:`physml_core.training.fit` (resuming the newest
    checkpoint in the run folder when there is one and ``resume``).

    ``run_dir``, ``resume``, ``tensorboard`` and ``stop_at`` override the config's fields when
    given (``stop_at``: end this call after that many env steps, as if interrupted there).
    """
    changes: dict[str, Any] = {"resume": resume, "tensorboard": tensorboard, "stop_at": stop_at,
                               "run_dir": None if run_dir is None else str(run_dir)}
    changes = {k: v for k, v in changes.items() if v is not None}
    result = fit(LSTMTD3Job, dataclasses.replace(config, **changes) if changes else config,
                 progress_bar=show_progress)
    return TrainResult(**{f.name: getattr(result, f.name)
                          for f in dataclasses.fields(training.TrainResult)})
