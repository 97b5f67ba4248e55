"""Deterministic evaluation of a policy, from a live agent or from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .agent import LSTMTD3
from .envs import make_env, make_vector_env
from .history import ActingHistory

__all__ = ["EvalResult", "evaluate_checkpoint", "run_episodes"]


@dataclass
class EvalResult:
    """Undiscounted returns and lengths of the evaluation episodes."""

    returns: np.ndarray
    lengths: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def to_dict(self) -> dict[str, Any]:
        return {
            "episodes": len(self.returns),
            "return_mean": self.mean,
            "return_std": self.std,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
        }


def run_episodes(
    agent: LSTMTD3,
    env_id: str,
    episodes: int,
    seed: int,
    pomdp: str | None = None,
    max_episode_steps: int | None = None,
    render: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> EvalResult:
    """Play ``episodes`` episodes without exploration noise.

    Without rendering the episodes run side by side in one synchronous vector env (one batched
    actor call per step); env ``i`` is reset with seed ``seed + i``.  With ``render`` they run
    one after another in a ``render_mode="human"`` env.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    L = agent.config.max_hist_len
    if render:
        env = make_env(env_id, pomdp, seed, max_episode_steps, render_mode="human",
                       env_kwargs=env_kwargs)
        returns, lengths = [], []
        try:
            for i in range(episodes):
                obs, _ = env.reset(seed=seed + i)
                hist = ActingHistory(1, agent.obs_dim, agent.act_dim, L)
                total, n, done = 0.0, 0, False
                while not done:
                    a = agent.act(obs[None], hist)
                    nxt, r, term, trunc, _ = env.step(a[0])
                    hist.push(obs[None], a)
                    obs, total, n, done = nxt, total + float(r), n + 1, bool(term or trunc)
                returns.append(total)
                lengths.append(n)
        finally:
            env.close()
        return EvalResult(np.asarray(returns), np.asarray(lengths))
    venv = make_vector_env(env_id, episodes, "sync", pomdp, seed, max_episode_steps,
                           env_kwargs=env_kwargs)
    try:
        obs, _ = venv.reset(seed=seed)
        hist = ActingHistory(episodes, agent.obs_dim, agent.act_dim, L)
        totals = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            a = agent.act(obs, hist)
            nxt, r, term, trunc, _ = venv.step(a)
            totals += np.where(running, r, 0.0)
            lengths += running
            done = np.asarray(term) | np.asarray(trunc)
            hist.push(obs, a)
            hist.reset(done)
            running &= ~done
            obs = nxt
    finally:
        venv.close()
    return EvalResult(totals, lengths)


def evaluate_checkpoint(
    checkpoint: str | Path,
    episodes: int = 10,
    seed: int = 12345,
    render: bool = False,
    device: str = "cpu",
) -> EvalResult:
    """Load a training checkpoint (file or run folder) and evaluate its actor."""
    from .train import load_agent

    agent, cfg = load_agent(checkpoint, device=device)
    return run_episodes(
        agent, cfg.env_id, episodes, seed, cfg.pomdp or None, cfg.max_episode_steps, render,
        cfg.env_kwargs,
    )
