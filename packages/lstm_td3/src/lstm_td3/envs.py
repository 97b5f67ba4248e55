"""Environment construction: ids resolved through Gymnasium, POMDP wrapping, vector envs.

Env ids come from Gymnasium's registry.  Ids of optional families are registered on demand:
``...BulletEnv-v0`` by importing :mod:`pybullet_envs_gymnasium` (extra ``lstm-td3[pybullet]``)
and ``beamenv/...`` by importing :mod:`beamenv` (extra ``lstm-td3[beam]``); nothing here imports
them at module level.  Vector envs use ``gymnasium.vector`` in *same-step* autoreset mode, so every
env yields a real transition at every step and the true final observation of an episode arrives
in ``info["final_obs"]``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from .wrappers.pomdp import POMDPWrapper, parse_pomdp

__all__ = ["ensure_registered", "final_observations", "make_env", "make_vector_env"]

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


def make_vector_env(
    env_id: str,
    n_envs: int = 1,
    vectorization: str = "sync",
    pomdp: str | None = None,
    seed: int | None = None,
    max_episode_steps: int | None = None,
    pomdp_kwargs: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> VectorEnv:
    """``n_envs`` copies of :func:`make_env` in a ``gymnasium.vector`` env (same-step autoreset).

    ``vectorization`` is ``"sync"`` (one process) or ``"async"`` (one worker process per env).
    Env ``i`` gets POMDP seed ``seed + i``.
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    if vectorization not in ("sync", "async"):
        raise ValueError(f"vectorization must be 'sync' or 'async', got {vectorization!r}")
    ensure_registered(env_id)
    parse_pomdp(pomdp)
    fns = [
        functools.partial(
            make_env,
            env_id,
            pomdp=pomdp,
            seed=None if seed is None else seed + i,
            max_episode_steps=max_episode_steps,
            pomdp_kwargs=pomdp_kwargs,
            env_kwargs=env_kwargs,
        )
        for i in range(n_envs)
    ]
    if vectorization == "async":
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


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
