"""Deterministic evaluation of a policy, from a live agent or from a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .agent import LSTMTD3
from .artifacts import load_agent
from .envs import make_env, make_vector_env
from .history import ActingHistory
from .seeding import stream_seed

__all__ = ["EvalResult", "evaluate_checkpoint", "run_episodes", "write_frames"]

_VIDEO_SUFFIXES = (".gif", ".npz")


def _check_video_suffix(path: str | Path) -> str:
    """The lower-case suffix of a video path, which must be one of :data:`_VIDEO_SUFFIXES`."""
    suffix = Path(path).suffix.lower()
    if suffix not in _VIDEO_SUFFIXES:
        raise ValueError(f"video must end in {' or '.join(_VIDEO_SUFFIXES)}, got {path}")
    return suffix


def write_frames(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Write RGB frames (each ``(H, W, 3)`` uint8) to ``path``: an animated GIF for ``.gif``
    (through Pillow, which matplotlib depends on) or, for ``.npz``, the array ``frames`` of shape
    ``(T, H, W, 3)``.  Written atomically."""
    from physml_core.atomic import atomic_path

    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    suffix = _check_video_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, frames=np.stack(frames).astype(np.uint8))
        else:
            from PIL import Image

            images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(1, round(1000 / fps)), loop=0)
    return path


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
    video: str | Path | None = None,
    stream: str = "eval",
) -> EvalResult:
    """Play ``episodes`` episodes without exploration noise.

    Episode ``i`` starts from ``stream_seed(stream, seed, i)`` (:mod:`lstm_td3.seeding`): the
    ``eval`` stream (held out, default) or the ``test`` stream that training uses, so evaluation
    episodes never repeat a training episode.  Without rendering the episodes run side by side
    in one synchronous vector env (one batched actor call per step).  With ``render`` they run
    one after another in a ``render_mode="human"`` env (a window).  With ``video`` they run one
    after another in a ``render_mode="rgb_array"`` env, which needs no display, and the frames
    of all episodes are written to ``video`` (see :func:`write_frames`).  The same seeds are
    used in every mode, so the returns do not depend on rendering.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    L = agent.config.max_hist_len
    seeds = [stream_seed(stream, seed, i) for i in range(episodes)]
    if render or video is not None:
        if video is not None:
            _check_video_suffix(video)
        mode = "rgb_array" if video is not None else "human"
        env = make_env(env_id, pomdp, None, max_episode_steps, render_mode=mode,
                       env_kwargs=env_kwargs)
        returns: list[float] = []
        lengths: list[int] = []
        frames: list[np.ndarray] = []
        try:
            for i in range(episodes):
                obs, _ = env.reset(seed=seeds[i])
                hist = ActingHistory(1, agent.obs_dim, agent.act_dim, L)
                total, n, done = 0.0, 0, False
                if video is not None:
                    frames.append(np.asarray(env.render()))
                while not done:
                    a = agent.act(obs[None], hist)
                    nxt, r, term, trunc, _ = env.step(a[0])
                    hist.push(obs[None], a)
                    obs, total, n, done = nxt, total + float(r), n + 1, bool(term or trunc)
                    if video is not None:
                        frames.append(np.asarray(env.render()))
                returns.append(total)
                lengths.append(n)
        finally:
            env.close()
        if video is not None:
            write_frames(video, frames)
        return EvalResult(np.asarray(returns), np.asarray(lengths))
    venv = make_vector_env(env_id, episodes, "sync", pomdp, None, max_episode_steps,
                           env_kwargs=env_kwargs)
    try:
        # a vector env takes one seed per env (gymnasium types VectorEnv.reset's seed as int)
        obs, _ = venv.reset(seed=seeds)  # type: ignore[arg-type]
        hist = ActingHistory(episodes, agent.obs_dim, agent.act_dim, L)
        totals = np.zeros(episodes)
        steps = np.zeros(episodes, dtype=np.int64)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            a = agent.act(obs, hist)
            nxt, r, term, trunc, _ = venv.step(a)
            totals += np.where(running, r, 0.0)
            steps += running
            done = np.asarray(term) | np.asarray(trunc)
            hist.push(obs, a)
            hist.reset(done)
            running &= ~done
            obs = nxt
    finally:
        venv.close()
    return EvalResult(totals, steps)


def evaluate_checkpoint(
    checkpoint: str | Path,
    episodes: int = 10,
    seed: int = 0,
    render: bool = False,
    device: str = "cpu",
    video: str | Path | None = None,
) -> EvalResult:
    """Load a training checkpoint (file or run folder) and evaluate its actor on the held-out
    ``eval`` seed stream (``seed`` picks the stream's run slot); ``render`` shows the episodes
    in a window, ``video`` (``.gif`` or ``.npz``) records them without a display."""
    agent, cfg = load_agent(checkpoint, device=device)
    return run_episodes(
        agent, cfg.env_id, episodes, seed, cfg.pomdp, cfg.max_episode_steps, render,
        cfg.env_kwargs, video,
    )
