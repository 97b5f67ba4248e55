"""Throughput benchmark: training env steps/s, gradient updates/s, replay sampling cost.

Every ratio is against a baseline measured in the same process: history sampling against a
per-sample Python loop that rebuilds each window (as the reference code does), PER against
uniform replay at the same capacity.
"""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .agent import LSTMTD3, TD3Config
from .buffers import PrioritizedReplayBuffer, ReplayBuffer
from .config import TrainConfig

__all__ = ["loop_gather", "run_benchmark"]


def loop_gather(buffer: ReplayBuffer, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: history windows built one sample at a time in Python, in the style of the
    reference code (slice the candidate window, cut it after the last episode boundary with
    ``np.where``, copy obs/act/next windows), extended to wrap-around so that it returns exactly
    what :meth:`ReplayBuffer.gather` returns.

    Returns ``hist_obs`` (B, W, obs_dim) and ``next_hist_obs`` (B, W, obs_dim).
    """
    L, W, T, n = buffer.max_hist_len, buffer.window, buffer.rows, buffer.n_envs
    full = buffer.filled_rows == T
    B = len(flat)
    hist_obs = np.zeros((B, W, buffer.obs_dim), dtype=np.float32)
    hist_act = np.zeros((B, W, buffer.act_dim), dtype=np.float32)
    next_obs = np.zeros_like(hist_obs)
    next_act = np.zeros_like(hist_act)
    for k, i in enumerate(flat):
        row, env = divmod(int(i), n)
        oldest = buffer.ptr if full else 0
        n_before = (row - oldest) % T if full else row
        start = row - min(L, n_before)
        rows = np.arange(start, row + 1) % T  # candidate window plus the sampled row
        starts = np.where(buffer.ep_step[rows, env] == 0)[0]
        cut = starts[-1] if len(starts) else 0
        seg = rows[cut:-1]  # history rows of the sampled transition
        h = len(seg)
        hist_obs[k, :h] = buffer.obs[seg, env]
        hist_act[k, :h] = buffer.act[seg, env]
        seg2 = rows[cut:][-L:] if L > 0 else rows[:0]  # next window includes the sampled row
        h2 = len(seg2)
        next_obs[k, :h2] = buffer.obs[seg2, env]
        next_act[k, :h2] = buffer.act[seg2, env]
    return hist_obs, next_obs


def _timeit(fn, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def _filled(cls, capacity: int, obs_dim: int, hist_len: int, seed: int, **kw) -> ReplayBuffer:
    buf = cls(obs_dim, 1, capacity, 1, hist_len, seed=seed, **kw)
    rng = np.random.default_rng(seed)
    buf.obs[:] = rng.standard_normal(buf.obs.shape, dtype=np.float32)
    buf.act[:] = rng.standard_normal(buf.act.shape, dtype=np.float32)
    buf.next_obs[:] = buf.obs
    buf.ep_step[:, 0] = np.arange(buf.rows) % 200  # Pendulum-length episodes
    buf.filled_rows = buf.rows
    buf.ptr = int(rng.integers(buf.rows))
    if isinstance(buf, PrioritizedReplayBuffer):
        buf.tree.update(np.arange(buf.capacity), rng.random(buf.capacity) ** buf.alpha)
    return buf


def _train_sps(n_envs: int, steps: int, hist_len: int, batch: int, hidden: int | None,
               seed: int, updates: bool = True) -> dict[str, float]:
    from .networks import NetworkConfig
    from .train import train

    agent = TD3Config(max_hist_len=hist_len)
    if hidden is not None:
        net = NetworkConfig((hidden,), hidden, 1, (hidden,), (hidden,), (hidden,))
        agent = replace(agent, actor=net, critic=net)
    cfg = TrainConfig(
        env_id="Pendulum-v1", pomdp="remove_velocity", n_envs=n_envs, total_steps=steps,
        steps_per_epoch=steps, start_steps=0, update_after=batch if updates else steps,
        update_every=50,
        batch_size=batch, replay_size=100_000, num_test_episodes=1, seed=seed, device="cpu",
        save_replay=False, agent=agent,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(cfg, tmp, resume=False, show_progress=False, tensorboard=False)
        wall = time.perf_counter() - t0
    return {"env_steps_per_s": round(result.steps_per_s, 2), "updates": result.updates,
            "wall_s": round(wall, 2)}


def run_benchmark(quick: bool = False, seed: int = 0, hidden: int | None = None,
                  capacity: int | None = None, train_steps: int | None = None
                  ) -> dict[str, Any]:
    """Measure and return the figures as a JSON-ready dict.

    ``quick`` uses fewer steps/repeats (CI smoke); ``hidden`` overrides every layer width (None:
    the paper's 128); ``capacity`` (replay size for the sampling figures, default 1e6) and
    ``train_steps`` (env steps of the 1-env training measurement; 4 envs run twice as many) shrink
    the run further.
    """
    torch.set_num_threads(1)
    hist_len, batch = 5, 100
    capacity = capacity or (100_000 if quick else 1_000_000)
    repeat = 20 if quick else 200
    out: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(), "cpu": platform.processor()
                    or platform.machine()},
        "settings": {"env": "Pendulum-v1 remove_velocity", "hist_len": hist_len,
                     "batch_size": batch, "utd_ratio": 1, "replay_capacity": capacity,
                     "hidden": hidden or 128, "quick": quick},
    }
    # ---- replay sampling
    uni = _filled(ReplayBuffer, capacity, 2, hist_len, seed)
    per = _filled(PrioritizedReplayBuffer, capacity, 2, hist_len, seed)
    t_uni = _timeit(lambda: uni.sample(batch), repeat)
    t_per = _timeit(lambda: per.sample(batch, 0.4), repeat)
    per_cycle = _timeit(lambda: per.update_priorities(per.sample(batch, 0.4).indices,
                                                      np.random.default_rng(0).random(batch)),
                        repeat)
    idx = uni.rng.integers(0, len(uni), batch)
    t_vec = _timeit(lambda: uni.gather(idx), repeat)
    t_loop = _timeit(lambda: loop_gather(uni, idx), max(5, repeat // 10))
    vec = uni.gather(idx)
    ref_h, ref_n = loop_gather(uni, idx)
    out["replay"] = {
        "uniform_sample_ms_per_batch": round(t_uni * 1e3, 4),
        "per_sample_ms_per_batch": round(t_per * 1e3, 4),
        "per_sample_plus_update_ms_per_batch": round(per_cycle * 1e3, 4),
        "per_overhead_ratio": round(t_per / t_uni, 3),
        "vectorised_history_gather_ms": round(t_vec * 1e3, 4),
        "python_loop_history_gather_ms": round(t_loop * 1e3, 4),
        "history_speedup_vs_python_loop": round(t_loop / t_vec, 1),
        "loop_and_vectorised_agree": bool(np.array_equal(ref_h, vec.hist_obs)
                                          and np.array_equal(ref_n, vec.next_hist_obs)),
    }
    # ---- gradient updates
    cfg = TD3Config(max_hist_len=hist_len)
    if hidden is not None:
        from .networks import NetworkConfig

        net = NetworkConfig((hidden,), hidden, 1, (hidden,), (hidden,), (hidden,))
        cfg = replace(cfg, actor=net, critic=net)
    agent = LSTMTD3(2, 1, np.array([-2.0]), np.array([2.0]), cfg, seed=seed)
    n_up = 10 if quick else 60
    t_up = _timeit(lambda: agent.update(uni.sample(batch)), n_up)
    out["updates"] = {"gradient_updates_per_s": round(1.0 / t_up, 2),
                      "ms_per_update": round(t_up * 1e3, 3)}
    # ---- training loop (collection + updates, UTD 1)
    steps = train_steps or (200 if quick else 600)
    out["training"] = {
        f"{n}_envs": _train_sps(n, steps if n == 1 else 2 * steps, hist_len, batch, hidden, seed)
        for n in (1, 4)
    }
    # collection alone (policy acting with its history, env stepping, replay insertion)
    out["collection_only"] = {
        f"{n}_envs": _train_sps(n, steps, hist_len, batch, hidden, seed, updates=False)
        for n in (1, 4)
    }
    out["goals"] = {
        "train_steps_per_s_ge_300": out["training"]["1_envs"]["env_steps_per_s"] >= 300,
        "history_speedup_ge_20x": out["replay"]["history_speedup_vs_python_loop"] >= 20,
        "per_overhead_le_2x": out["replay"]["per_overhead_ratio"] <= 2,
    }
    return out
