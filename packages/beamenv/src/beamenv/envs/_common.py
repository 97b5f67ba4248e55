"""Pieces shared by the PSB environments: action checks, observations, space definitions."""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from ..bucket import line_density
from ..errors import BeamEnvError

TWO_PI = 2.0 * math.pi


def wrap_phase(phi_rad: float) -> float:
    """Wrap a phase into [0, 2 pi)."""
    return float(phi_rad % TWO_PI)


def wrap_signed(phi_rad: float) -> float:
    """Wrap a phase difference into [-pi, pi)."""
    return float((phi_rad + math.pi) % TWO_PI - math.pi)


def check_action(action: object) -> tuple[float, bool]:
    """Validate an action and clip it to [-1, 1].

    Returns ``(value, clipped)``.  Raises :class:`BeamEnvError` for NaN/inf or a wrong shape.
    Clipping rule: each component outside [-1, 1] is set to the nearest limit (no rescaling);
    ``info["action_clipped"]`` reports it.
    """
    try:
        given = np.asarray(action, dtype=float)
    except (TypeError, ValueError):
        raise BeamEnvError(f"action must be a number or an array of shape (1,), got {action!r}"
                           ) from None
    arr = given.reshape(-1)
    if arr.size != 1:
        raise BeamEnvError(f"action must have shape (1,), got {given.shape}")
    value = float(arr[0])
    if not math.isfinite(value):
        raise BeamEnvError(f"action must be finite, got {value} (NaN or inf from the policy?)")
    clipped = min(max(value, -1.0), 1.0)
    return clipped, clipped != value


def action_space() -> spaces.Box:
    return spaces.Box(low=-1.0, high=1.0, shape=(1,), dtype=np.float32)


def resonator_parameters(value: tuple[float, float, float] | list[float] | None
                         ) -> tuple[float, float, float] | None:
    """``(R_shunt_ohm, f_res_Hz, Q)`` from a tuple or list of three numbers, or None."""
    if not value:
        return None
    if len(value) != 3:
        raise BeamEnvError(f"resonator must be (R_shunt_ohm, f_res_Hz, Q), got {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def observation_space(n_bins: int, n_extra: int, extra_low: float = -2.0,
                      extra_high: float = 2.0) -> spaces.Box:
    low = np.concatenate([np.zeros(n_bins), np.full(n_extra, extra_low)]).astype(np.float32)
    high = np.concatenate([np.full(n_bins, float(n_bins)),
                           np.full(n_extra, extra_high)]).astype(np.float32)
    return spaces.Box(low=low, high=high, dtype=np.float32)


def profile_observation(dt_s: np.ndarray, t_rev_s: float, n_bins: int, n_initial: int
                        ) -> np.ndarray:
    """Binned line density over one revolution period, shape (n_bins,).

    Normalised to the initial number of macroparticles so that 1 means "uniform over the whole
    period" (the value of a coasting beam); lost particles lower the profile.  Bounded by n_bins.
    """
    counts = line_density(dt_s, t_rev_s, n_bins)
    return (counts * n_bins / max(n_initial, 1)).astype(np.float32)


def add_profile_noise(profile: np.ndarray, noise: float, rng: np.random.Generator
                      ) -> np.ndarray:
    """Profile-measurement noise: Gaussian, sigma = ``noise`` x the profile peak in every bin
    (a pick-up's noise floor scales with its gain, set for the peak), clipped at 0.  ``noise``
    0 returns the profile unchanged and draws nothing from ``rng``."""
    if noise <= 0:
        return profile
    sigma = noise * float(np.max(profile)) if profile.size else 0.0
    noisy = profile + rng.normal(0.0, sigma, size=profile.shape)
    return np.clip(noisy, 0.0, None).astype(profile.dtype)


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise BeamEnvError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_finite(name: str, value: object, low: float | None = None,
                 high: float | None = None) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BeamEnvError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out) or (low is not None and out < low) or (
            high is not None and out > high):
        raise BeamEnvError(f"{name} must be finite and in [{low}, {high}], got {value!r}")
    return out
