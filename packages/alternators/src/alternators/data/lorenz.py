"""The Lorenz-63 system and its numerical integration.

The Lorenz system (Lorenz 1963, J. Atmos. Sci. 20, 130) with the classical chaotic parameters
sigma = 10, rho = 28, beta = 8/3 is the latent process of the Alternators decoding benchmark
(Rezaei and Dieng, "Alternators for Sequence Modeling", arXiv:2405.11848).  The reference code
integrates it with explicit Euler; here a classical fourth-order Runge-Kutta scheme with several
sub-steps per sample, vectorised over trajectories, is used instead.

Time is dimensionless (the Lorenz time unit); states are dimensionless.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LORENZ_BETA",
    "LORENZ_RHO",
    "LORENZ_SIGMA",
    "integrate_lorenz",
    "lorenz_rhs",
    "minmax_scale",
]

LORENZ_SIGMA = 10.0
LORENZ_RHO = 28.0
LORENZ_BETA = 8.0 / 3.0


def lorenz_rhs(
    state: np.ndarray,
    sigma: float = LORENZ_SIGMA,
    rho: float = LORENZ_RHO,
    beta: float = LORENZ_BETA,
) -> np.ndarray:
    """Time derivative of the Lorenz state.

    Parameters
    ----------
    state: array (..., 3) of (x, y, z).

    Returns
    -------
    array (..., 3): d(x, y, z)/dt per Lorenz time unit.
    """
    x, y, z = state[..., 0], state[..., 1], state[..., 2]
    return np.stack((sigma * (y - x), x * (rho - z) - y, x * y - beta * z), axis=-1)


def _rk4_step(state: np.ndarray, h: float, sigma: float, rho: float, beta: float) -> np.ndarray:
    k1 = lorenz_rhs(state, sigma, rho, beta)
    k2 = lorenz_rhs(state + 0.5 * h * k1, sigma, rho, beta)
    k3 = lorenz_rhs(state + 0.5 * h * k2, sigma, rho, beta)
    k4 = lorenz_rhs(state + h * k3, sigma, rho, beta)
    return state + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def integrate_lorenz(
    initial: np.ndarray,
    n_steps: int,
    dt: float = 0.03,
    substeps: int = 6,
    burn_in: int = 0,
    sigma: float = LORENZ_SIGMA,
    rho: float = LORENZ_RHO,
    beta: float = LORENZ_BETA,
) -> np.ndarray:
    """Integrate many Lorenz trajectories at once with classical RK4.

    Parameters
    ----------
    initial: array (N, 3) of initial states.
    n_steps: number of samples returned per trajectory (the first is the state after burn-in).
    dt: sampling interval in Lorenz time units.
    substeps: RK4 sub-steps per sampling interval (step ``dt / substeps``).
    burn_in: sampling intervals integrated and discarded first, to land on the attractor.

    Returns
    -------
    array (N, n_steps, 3), float64.
    """
    initial = np.asarray(initial, dtype=np.float64)
    if initial.ndim != 2 or initial.shape[1] != 3:
        raise ValueError(f"initial states must have shape (N, 3), got {initial.shape}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    if not dt > 0 or substeps < 1 or burn_in < 0:
        raise ValueError("need dt > 0, substeps >= 1 and burn_in >= 0")
    h = dt / substeps
    state = initial.copy()
    for _ in range(burn_in * substeps):
        state = _rk4_step(state, h, sigma, rho, beta)
    out = np.empty((state.shape[0], n_steps, 3))
    out[:, 0] = state
    for t in range(1, n_steps):
        for _ in range(substeps):
            state = _rk4_step(state, h, sigma, rho, beta)
        out[:, t] = state
    if not np.isfinite(out).all():
        raise ValueError("Lorenz integration diverged: reduce dt or increase substeps")
    return out


def minmax_scale(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, low: float = -2.0, high: float = 2.0
) -> np.ndarray:
    """Map each coordinate of ``values`` (..., D) from [lo, hi] to [low, high] (reference: [-2, 2])."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    span = np.where(hi > lo, hi - lo, 1.0)
    return low + (high - low) * (values - lo) / span
