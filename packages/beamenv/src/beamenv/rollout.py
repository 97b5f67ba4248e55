"""Run baseline policies (zero, random, scan) in the environments; used by the CLI."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .errors import BeamEnvError

__all__ = ["POLICIES", "RolloutConfig", "make_env", "rollout"]

POLICIES = ("zero", "random", "scan")
ENVS = {"cycle": "beamenv/PSBPhaseCycle-v0", "correction": "beamenv/PSBPhaseCorrection-v0"}


@dataclasses.dataclass
class RolloutConfig:
    """One rollout job (saved with its results).

    Attributes:
        env: ``"cycle"`` or ``"correction"``.
        policy: ``"zero"`` (a = 0), ``"random"`` (uniform actions) or ``"scan"`` (cycle: greedy
            phase scan; correction: steer towards the env's scanned optimum).
        episodes: number of episodes.
        seed: seed of the first episode (episode i uses seed + i).
        fidelity: fidelity preset.
        n_steps: steps per episode.
        intensity: protons per bunch.
        n_phases: trial phases of the scan policy.
    """

    env: str = "cycle"
    policy: str = "zero"
    episodes: int = 1
    seed: int = 0
    fidelity: str = "fast"
    n_steps: int = 30
    intensity: float = 8e12
    n_phases: int = 12

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise BeamEnvError(f"env must be one of {', '.join(ENVS)}, got {self.env!r}")
        if self.policy not in POLICIES:
            raise BeamEnvError(f"policy must be one of {', '.join(POLICIES)}, "
                               f"got {self.policy!r}")
        if self.episodes < 1 or self.n_steps < 1:
            raise BeamEnvError("episodes and n_steps must be at least 1")


def make_env(cfg: RolloutConfig, **kwargs: Any) -> Any:
    import gymnasium as gym

    import beamenv  # noqa: F401 - registers the ids

    return gym.make(ENVS[cfg.env], fidelity=cfg.fidelity, n_steps=cfg.n_steps,
                    intensity=cfg.intensity, **kwargs)


def rollout(cfg: RolloutConfig, record_profiles: bool = False) -> dict[str, Any]:
    """Run ``cfg.episodes`` episodes; returns returns per episode and per-step traces of the
    first episode (phases, rewards, bunching; profiles if ``record_profiles``)."""
    env = make_env(cfg)
    base = env.unwrapped
    rng = np.random.default_rng(cfg.seed)
    returns: list[float] = []
    trace: dict[str, list] = {"phi2_rad": [], "reward": [], "bunching_factor": [],
                              "profiles": [], "t_rev_s": [], "t_s": []}
    for ep in range(cfg.episodes):
        if cfg.env == "cycle" and cfg.policy == "scan":
            from .scan import scan_cycle

            res = scan_cycle(base, n_phases=cfg.n_phases, seed=cfg.seed + ep)
            returns.append(res.total_reward)
            if ep == 0:
                trace["phi2_rad"] = res.phi2_rad.tolist()
                trace["reward"] = res.rewards.tolist()
                trace["bunching_factor"] = res.bunching.tolist()
            continue
        obs, info = env.reset(seed=cfg.seed + ep)
        total, done = 0.0, False
        while not done:
            if cfg.policy == "zero":
                action = np.zeros(1, np.float32)
            elif cfg.policy == "random":
                action = rng.uniform(-1, 1, size=1).astype(np.float32)
            else:  # correction + scan: steer towards the scanned optimum
                err = info.get("phase_error_rad", 0.0)
                action = np.array([np.clip(-err / base.max_increment_rad, -1, 1)], np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            total += reward
            done = terminated or truncated
            if ep == 0:
                trace["phi2_rad"].append(info["phi2_rad"])
                trace["reward"].append(reward)
                trace["bunching_factor"].append(info.get("bunching_factor", float("nan")))
                if record_profiles:
                    trace["profiles"].append(obs[: base.n_bins].tolist())
                    t = info.get("t_s", 0.0)
                    trace["t_s"].append(t)
        returns.append(total)
    env.close()
    if not record_profiles:
        for key in ("profiles", "t_rev_s", "t_s"):
            trace.pop(key)
    return {"config": dataclasses.asdict(cfg), "returns": returns,
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)) if len(returns) > 1 else 0.0,
            "first_episode": trace, "pi": math.pi}
