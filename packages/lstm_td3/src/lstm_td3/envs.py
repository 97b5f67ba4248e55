"""Environment construction: ids resolved through Gymnasium, POMDP wrapping, vector envs.

Env ids come from Gymnasium's registry.  Ids of optional families are registered on demand:
``...BulletEnv-v0`` by importing :mod:`pybullet_envs_gymnasium` (extra ``lstm-td3[pybullet]``)
and ``beamenv/...`` by importing :mod:`beamenv` (extra ``lstm-td3[beam]``); nothing here imports
them at module level.  Vector envs use ``gymnasium.vector`` in *same-step* autoreset mode, so every
env yields a real transition at every step and the true final observation of an episode arrives
in ``info["final_obs"]``.

Training envs are wrapped in :class:`EpisodeSeeds`, which seeds *every* episode from the run's
``train_env`` seed stream (:mod:`lstm_td3.seeding`): episode ``k`` of env ``i`` in run ``s``
starts from ``stream_seed("train_env", s, i, k)`` whatever happened before.  An episode is then
reproduced exactly by its seed and its actions, which is how a resumed run re-enters the episodes
that were running at the checkpoint (:func:`make_vector_env` ``restore``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from .seeding import stream_seed
from .wrappers.pomdp import POMDPWrapper, parse_pomdp

__all__ = ["EpisodeSeeds", "ensure_registered", "final_observations", "make_env",
           "make_vector_env"]

_OPTIONAL = (
    ("beamenv/", "beamenv", "lstm-td3[beam]"),
    ("BulletEnv", "pybullet_envs_gymnasium", "lstm-td3[pybullet]"),
)


def ensure_registered(env_id: str) -> None:
    """Make sure ``env_id`` is registered, importing its optional provider if needed.

    Raises ``ValueError`` (one line) when the id is unknown or its provider is not installed.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env id must be a non-empty string, got {env_id!r}")
    if env_id in gym.registry:
        return
    for marker, module, extra in _OPTIONAL:
        if (env_id.startswith(marker) if marker.endswith("/") else marker in env_id):
            if importlib.util.find_spec(module) is None:
                raise ValueError(
                    f"environment {env_id!r} needs the {module} package: pip install '{extra}'"
                )
            importlib.import_module(module)
            break
    if env_id not in gym.registry:
        known = sorted(k for k in gym.registry if "/" not in k or k.startswith("beamenv/"))
        close = [k for k in known if env_id.split("-")[0].split("/")[-1].lower() in k.lower()]
        hint = f" (did you mean {', '.join(close[:5])}?)" if close else ""
        raise ValueError(f"unknown environment id {env_id!r}{hint}")


def make_env(
    env_id: str,
    pomdp: str | None = None,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
    pomdp_kwargs: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> gym.Env:
    """One environment: ``gymnasium.make(env_id)``, flattened observation, optional POMDP wrapper.

    ``seed`` seeds the POMDP wrapper's generator (the env itself is seeded at ``reset``).
    """
    ensure_registered(env_id)
    kinds = parse_pomdp(pomdp)
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = int(max_episode_steps)
    env = gym.make(env_id, render_mode=render_mode, **kwargs)
    if not isinstance(env.action_space, gym.spaces.Box) or len(env.action_space.shape) != 1:
        env.close()
        raise ValueError(
            f"{env_id} has action space {env.action_space}: LSTM-TD3 needs a 1-D Box "
            "(continuous) action space"
        )
    space = env.observation_space
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        env = gym.wrappers.FlattenObservation(env)
    if kinds:
        env = POMDPWrapper(env, kinds, seed=seed, **(pomdp_kwargs or {}))
    return env


class EpisodeSeeds(gym.Wrapper):
    """Seeds every episode from a seed stream: an unseeded ``reset`` (also the vector env's
    autoreset) starts episode ``episode`` with ``stream_seed(stream, run, index, episode)`` and
    counts it; an explicit seed is passed through (and counted).

    ``replay``: actions (T, act_dim) to step through after the *first* reset, without returning
    their rewards, so that the env continues an episode that was running when a checkpoint was
    written (its seed is ``episode``, the counter passed in).  Exact for every env whose episode
    is determined by its reset seed and its actions (Gymnasium envs draw all randomness from
    ``np_random``; the POMDP wrappers re-seed at a seeded reset).
    """

    def __init__(self, env: gym.Env, stream: str, run: int, index: int, episode: int = 0,
                 replay: np.ndarray | None = None) -> None:
        super().__init__(env)
        stream_seed(stream, run, index, episode)  # validates
        self.stream, self.run, self.index, self.episode = stream, int(run), int(index), episode
        self._replay = None if replay is None else np.asarray(replay, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None:
            seed = stream_seed(self.stream, self.run, self.index, self.episode)
        self.episode += 1
        obs, info = self.env.reset(seed=seed, options=options)
        if self._replay is not None:
            actions, self._replay = self._replay, None
            for k, a in enumerate(actions):
                obs, _r, term, trunc, info = self.env.step(a)
                if (term or trunc) and k < len(actions) - 1:
                    raise RuntimeError(
                        f"replayed episode of env {self.index} ended after {k + 1} of "
                        f"{len(actions)} actions: the env is not reproducible from its seed"
                    )
        return obs, info


def make_vector_env(
    env_id: str,
    n_envs: int = 1,
    vectorization: str = "sync",
    pomdp: str | None = None,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    pomdp_kwargs: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    episode_seeds: tuple[str, int] | None = None,
    restore: list[tuple[int, np.ndarray]] | None = None,
) -> VectorEnv:
    """``n_envs`` copies of :func:`make_env` in a ``gymnasium.vector`` env (same-step autoreset).

    ``vectorization`` is ``"sync"`` (one process) or ``"async"`` (one worker process per env).
    Env ``i`` gets POMDP seed ``seed + i`` (or, with ``episode_seeds``,
    ``stream_seed("pomdp", run, i)``).  ``episode_seeds=(stream, run)`` wraps env ``i`` in
    :class:`EpisodeSeeds` (every episode seeded from the stream); ``restore`` (one
    ``(episode, actions)`` per env, needs ``episode_seeds``) makes the first reset re-enter
    episode ``episode`` after ``actions``.
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    if vectorization not in ("sync", "async"):
        raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
    ensure_registered(env_id)
    parse_pomdp(pomdp)
    if restore is not None and (episode_seeds is None or len(restore) != n_envs):
        raise ValueError("restore needs episode_seeds and one (episode, actions) per env")
    fns = []
    for i in range(n_envs):
        if episode_seeds is not None:
            pomdp_seed: int | None = stream_seed("pomdp", episode_seeds[1], i)
        else:
            pomdp_seed = None if seed is None else seed + i
        fn = functools.partial(
            make_env,
            env_id,
            pomdp=pomdp,
            seed=pomdp_seed,
            max_episode_steps=max_episode_steps,
            pomdp_kwargs=pomdp_kwargs,
            env_kwargs=env_kwargs,
        )
        if episode_seeds is not None:
            episode, replay = restore[i] if restore is not None else (0, None)
            fn = functools.partial(_seeded, fn, episode_seeds[0], episode_seeds[1], i,
                                   episode, replay)
        fns.append(fn)
    if vectorization == "async":
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def _seeded(fn, stream: str, run: int, index: int, episode: int,
            replay: np.ndarray | None) -> gym.Env:
    return EpisodeSeeds(fn(), stream, run, index, episode, replay)


def final_observations(next_obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The true next observations (n_envs, obs_dim): ``info["final_obs"]`` where an episode
    ended (same-step autoreset returns the reset observation in ``next_obs`` there)."""
    real = np.array(next_obs, dtype=np.float32, copy=True)
    if np.any(done):
        if "final_obs" not in info:
            raise RuntimeError("vector env did not report final_obs: use same-step autoreset")
        mask = info.get("_final_obs", done)
        for i in np.flatnonzero(mask):
            real[i] = np.asarray(info["final_obs"][i], dtype=np.float32).reshape(-1)
    return real
