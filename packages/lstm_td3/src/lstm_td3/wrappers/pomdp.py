"""Partially observable variants of fully observable control tasks (Meng et al. 2021, Sec. 5).

Each variant is a :class:`gymnasium.ObservationWrapper` with its own seeded random generator:

* ``remove_velocity`` - drop the velocity entries (index sets per supported env, below);
* ``flickering`` - the whole observation is zeroed with probability ``flicker_prob`` (0.2);
* ``random_noise`` - Gaussian noise of standard deviation ``noise_std`` (0.1) on every entry;
* ``random_sensor_missing`` - each entry is zeroed independently with probability
  ``missing_prob`` (0.1);
* combinations, written with ``+`` (or ``_and_`` as in the reference code), applied left to
  right, e.g. ``remove_velocity+flickering`` or ``random_noise+random_sensor_missing``.

The generator is seeded from the ``seed`` argument and re-seeded whenever ``reset(seed=...)``
receives a seed, so a seeded episode is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

__all__ = [
    "POMDP_KINDS",
    "VELOCITY_INDICES",
    "POMDPWrapper",
    "parse_pomdp",
    "velocity_indices",
]

POMDP_KINDS = ("remove_velocity", "flickering", "random_noise", "random_sensor_missing")

_LOCOMOTION = (
    "HalfCheetahBulletEnv-v0",
    "AntBulletEnv-v0",
    "HopperBulletEnv-v0",
    "Walker2DBulletEnv-v0",
    "HumanoidBulletEnv-v0",
    "HumanoidFlagrunBulletEnv-v0",
    "HumanoidFlagrunHarderBulletEnv-v0",
)

#: Velocity entries of the observation, per env id.  Pendulum-v1 is ``[cos, sin, theta_dot]``;
#: pybullet locomotion observations start ``[dz, sin, cos, 0.3 vx, 0.3 vy, 0.3 vz, roll, pitch]``
#: and, as in the paper, only the body velocities 3-5 are dropped (joint speeds stay);
#: InvertedPendulum(Swingup) is ``[x, vx, cos, sin, theta_dot]``; InvertedDoublePendulum
#: ``[x, vx, pole2_x, cos1, sin1, theta1_dot, cos2, sin2, theta2_dot]``; Reacher
#: ``[tx, ty, dx, dy, cos, sin, theta_dot, gamma, gamma_dot]``.
VELOCITY_INDICES: dict[str, tuple[int, ...]] = {
    "Pendulum-v1": (2,),
    "MountainCarContinuous-v0": (1,),
    "InvertedPendulumBulletEnv-v0": (1, 4),
    "InvertedPendulumSwingupBulletEnv-v0": (1, 4),
    "InvertedDoublePendulumBulletEnv-v0": (1, 5, 8),
    "ReacherBulletEnv-v0": (6, 8),
    **{name: (3, 4, 5) for name in _LOCOMOTION},
}

_DEFAULTS = {"flicker_prob": 0.2, "noise_std": 0.1, "missing_prob": 0.1}


def parse_pomdp(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Split ``"a+b"`` / ``"a_and_b"`` into known kinds; ``None``/``""``/``"none"`` -> ``()``."""
    if spec is None:
        return ()
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() in ("", "none", "mdp"):
            return ()
        parts = [p for chunk in text.split("+") for p in chunk.split("_and_")]
    else:
        parts = list(spec)
    kinds = tuple(p.strip() for p in parts if p.strip())
    for kind in kinds:
        if kind not in POMDP_KINDS:
            raise ValueError(f"unknown POMDP variant {kind!r}: use one of {', '.join(POMDP_KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"POMDP variant repeated in {spec!r}")
    return kinds


def velocity_indices(env_id: str) -> tuple[int, ...]:
    """Velocity entries for ``env_id`` (namespace and version kept), or ``ValueError``."""
    if env_id in VELOCITY_INDICES:
        return VELOCITY_INDICES[env_id]
    raise ValueError(
        f"remove_velocity has no index set for {env_id!r}; supported: "
        f"{', '.join(sorted(VELOCITY_INDICES))} (or pass velocity_indices=...)"
    )


class POMDPWrapper(gym.ObservationWrapper):
    """Make a flat Box observation partially observable.

    Parameters
    ----------
    env:
        Environment with a 1-D ``Box`` observation space.
    kinds:
        Variant(s), see :func:`parse_pomdp`.
    velocity_idx:
        Entries removed by ``remove_velocity``; default from :data:`VELOCITY_INDICES` by env id.
    flicker_prob, noise_std, missing_prob:
        Variant parameters (paper defaults 0.2, 0.1, 0.1).
    seed:
        Seed of the wrapper's own generator.
    """

    def __init__(
        self,
        env: gym.Env,
        kinds: str | Sequence[str],
        velocity_idx: Sequence[int] | None = None,
        flicker_prob: float = _DEFAULTS["flicker_prob"],
        noise_std: float = _DEFAULTS["noise_std"],
        missing_prob: float = _DEFAULTS["missing_prob"],
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        self.kinds = parse_pomdp(kinds)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"POMDP wrappers need a flat Box observation space, got {space}; "
                             "choose an environment with a 1-D Box observation")
        for name, p in (("flicker_prob", flicker_prob), ("missing_prob", missing_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.flicker_prob, self.noise_std, self.missing_prob = flicker_prob, noise_std, missing_prob
        dim = space.shape[0]
        keep = np.arange(dim)
        low = space.low.astype(np.float32)
        high = space.high.astype(np.float32)
        if "remove_velocity" in self.kinds:
            if velocity_idx is None:
                spec_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
                velocity_idx = velocity_indices(spec_id)
            drop = np.asarray(sorted(set(int(i) for i in velocity_idx)), dtype=np.int64)
            if drop.size and (drop.min() < 0 or drop.max() >= dim):
                raise ValueError(f"velocity indices {drop.tolist()} out of range for dim {dim}")
            keep = np.setdiff1d(keep, drop)
            if keep.size == 0:
                raise ValueError("remove_velocity would remove every observation entry")
        self.keep = keep
        low, high = low[keep], high[keep]
        if "flickering" in self.kinds or "random_sensor_missing" in self.kinds:
            low, high = np.minimum(low, 0), np.maximum(high, 0)
        if "random_noise" in self.kinds:
            low, high = np.full_like(low, -np.inf), np.full_like(high, np.inf)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng([seed, 0x504F4D44])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32)[self.keep]
        for kind in self.kinds:
            if kind == "flickering":
                if self.rng.random() < self.flicker_prob:
                    obs = np.zeros_like(obs)
            elif kind == "random_noise":
                obs = obs + self.rng.normal(0.0, self.noise_std, obs.shape).astype(np.float32)
            elif kind == "random_sensor_missing":
                obs = np.where(self.rng.random(obs.shape) < self.missing_prob, 0.0, obs)
                obs = obs.astype(np.float32)
        return obs
