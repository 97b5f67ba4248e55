"""Phase scans: the classical baseline an agent must beat or match.

* :func:`scan_phase` - for a fixed machine setting, track the same bunch with each trial Phi_2 and
  return the phase of the flattest bunch (largest bunching factor), refined by a parabola through
  the best point and its two neighbours.  Used by ``PSBPhaseCorrection-v0`` (cached).
* :func:`scan_cycle` - the best Phi_2 program along the cycle of ``PSBPhaseCycle-v0`` by a greedy
  scan: at every step each trial phase is simulated from the current beam, the best is kept.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .errors import BeamEnvError
from .sim import BeamSimulator

__all__ = ["CycleScanResult", "PhaseScanResult", "scan_cycle", "scan_phase", "trial_phases"]


def trial_phases(n_phases: int) -> np.ndarray:
    """``n_phases`` equally spaced phases over [0, 2 pi), starting at 0 (pi included if even)."""
    if not isinstance(n_phases, int) or n_phases < 3:
        raise BeamEnvError(f"n_phases must be an integer >= 3, got {n_phases!r}")
    return 2 * math.pi * np.arange(n_phases) / n_phases


def _refine(phases: np.ndarray, scores: np.ndarray) -> float:
    """Vertex of the parabola through the best score and its circular neighbours."""
    i = int(np.argmax(scores))
    n = len(phases)
    y0, y1, y2 = scores[(i - 1) % n], scores[i], scores[(i + 1) % n]
    step = 2 * math.pi / n
    denom = y0 - 2 * y1 + y2
    shift = 0.0 if denom >= 0 else float(np.clip(0.5 * (y0 - y2) / denom, -0.5, 0.5))
    return float((phases[i] + shift * step) % (2 * math.pi))


@dataclasses.dataclass
class PhaseScanResult:
    """Result of :func:`scan_phase`.

    Attributes:
        phases_rad: trial phases, shape (n,).
        bunching: mean bunching factor for each trial phase, shape (n,).
        lost_fraction: lost fraction for each trial phase, shape (n,).
        best_phi2_rad: refined optimum (rad, [0, 2 pi)).
        best_bunching: best bunching factor among the trials.
    """

    phases_rad: np.ndarray
    bunching: np.ndarray
    lost_fraction: np.ndarray
    best_phi2_rad: float
    best_bunching: float

    def to_dict(self) -> dict[str, Any]:
        return {"phases_rad": self.phases_rad.tolist(), "bunching": self.bunching.tolist(),
                "lost_fraction": self.lost_fraction.tolist(),
                "best_phi2_rad": self.best_phi2_rad, "best_bunching": self.best_bunching}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhaseScanResult:
        return cls(np.asarray(data["phases_rad"], float), np.asarray(data["bunching"], float),
                   np.asarray(data["lost_fraction"], float), float(data["best_phi2_rad"]),
                   float(data["best_bunching"]))


def scan_phase(sim: BeamSimulator, dt_s: np.ndarray, de_eV: np.ndarray, t_s: float,
               phases_rad: np.ndarray, n_stretches: int = 2, loss_penalty: float = 10.0,
               ) -> PhaseScanResult:
    """Track the bunch ``(dt_s, de_eV)`` from cycle time ``t_s`` for ``n_stretches`` stretches
    with each trial phase; score = bunching factor of the last stretch minus
    ``loss_penalty`` x lost fraction.  The bunch is carried between stretches unchanged (the
    machine setting of ``sim.programs`` continues), so the score includes the response of the
    bunch to the phase change, as an agent sees it."""
    phases = np.asarray(phases_rad, dtype=float)
    bunching = np.zeros(phases.size)
    lost = np.zeros(phases.size)
    n0 = dt_s.size
    t_rev = float(sim.ring.revolution_period_s(sim.programs.momentum_at(t_s)))
    turns = sim.fidelity.turns_per_step
    for i, phi in enumerate(phases):
        dt, de = dt_s, de_eV
        for j in range(n_stretches):
            res = sim.track(dt, de, t_s + j * turns * t_rev, float(phi))
            dt, de = res.dt_s, res.de_eV
            if dt.size == 0:
                break
        bunching[i] = float(np.mean(res.bunching)) if dt.size else 0.0
        lost[i] = 1.0 - dt.size / n0
    score = bunching - loss_penalty * lost
    best = _refine(phases, score)
    return PhaseScanResult(phases, bunching, lost, best, float(bunching[int(np.argmax(score))]))


@dataclasses.dataclass
class CycleScanResult:
    """Result of :func:`scan_cycle`.

    Attributes:
        phi2_rad: best Phi_2 per step, shape (n_steps,).
        rewards: environment reward per step, shape (n_steps,).
        bunching: bunching factor per step, shape (n_steps,).
        times_s: cycle time of each step, shape (n_steps,).
        total_reward: sum of rewards (compare with an agent's return).
    """

    phi2_rad: np.ndarray
    rewards: np.ndarray
    bunching: np.ndarray
    times_s: np.ndarray
    total_reward: float

    def to_dict(self) -> dict[str, Any]:
        return {"phi2_rad": self.phi2_rad.tolist(), "rewards": self.rewards.tolist(),
                "bunching": self.bunching.tolist(), "times_s": self.times_s.tolist(),
                "total_reward": self.total_reward}


def scan_cycle(env: Any, n_phases: int = 16, seed: int = 0) -> CycleScanResult:
    """Greedy best Phi_2 program for a ``PSBPhaseCycle-v0`` environment (absolute actions).

    ``env`` is the unwrapped :class:`~beamenv.envs.cycle.PSBPhaseCycleEnv` (``.unwrapped`` of
    what ``gymnasium.make`` returns).  Each step simulates every trial phase from the current
    beam (``env.advance``), keeps the one with the best environment reward (``env.reward_of``:
    bunching, loss and emittance-growth terms), then steps the environment with it, so the
    returned rewards are the environment's own.  Cost: ``n_phases + 1`` trackings per step.
    """
    from .envs.cycle import PSBPhaseCycleEnv

    env = getattr(env, "unwrapped", env)
    if not isinstance(env, PSBPhaseCycleEnv):
        raise BeamEnvError("scan_cycle needs a beamenv/PSBPhaseCycle-v0 environment")
    if env.action_mode != "absolute" or env.phase_range_rad < math.pi:
        raise BeamEnvError("scan_cycle needs action_mode='absolute' and phase_range_rad = pi")
    phases = trial_phases(n_phases)
    env.reset(seed=seed)
    chosen, rewards, bunching = [], [], []
    for _ in range(env.n_steps):
        dt, de = env.beam
        k = env.current_step
        scores = np.empty(phases.size)
        for i, phi in enumerate(phases):
            scores[i] = env.reward_of(env.advance(dt, de, k, float(phi)))[0]
        best = float(phases[int(np.argmax(scores))])
        _, reward, terminated, truncated, info = env.step(
            np.array([env.action_from_phase(best)], dtype=np.float32))
        chosen.append(best)
        rewards.append(reward)
        bunching.append(info.get("bunching_factor", 0.0))
        if terminated or truncated:
            break
    times = env.step_times_s[: len(chosen)]
    return CycleScanResult(np.array(chosen), np.array(rewards), np.array(bunching),
                           np.asarray(times), float(np.sum(rewards)))
