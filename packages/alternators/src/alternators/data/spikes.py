"""Spiking-neuron observation model of the Alternators Lorenz benchmark, and its preprocessing.

Following the reference (Rezaei and Dieng, arXiv:2405.11848, and its public code), a population
of neurons observes the latent Lorenz state through Gaussian tuning curves: neuron ``m`` has a
centre ``c_m`` (uniform over the scaled state range), a width ``w_m`` and a baseline rate
``b_m``.  Its conditional intensity in spikes per time bin is

    lambda_m(t) = (b_m + a_m exp(-|z_t - c_m|^2 / (2 w_m^2))) * exp(h_m * s_m(t-1))

where the spike-history factor with ``h_m < 0`` makes the neuron refractory after a spike.  Spike
counts are Poisson draws clipped to {0, 1}.  Preprocessing drops silent neurons, smooths each
spike train with a Gaussian kernel (sigma 2 bins) and stacks a 2-step history, giving observations
of dimension ``history * neurons``.  The smoothing is causal by default (a one-sided half-Gaussian
over the current and past bins), so that no observation carries information from future bins
into a forecast's context; ``causal=False`` is the centred kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = [
    "NeuronPopulation",
    "causal_smooth",
    "preprocess_spikes",
    "simulate_spikes",
    "stack_history",
]


@dataclass(frozen=True)
class NeuronPopulation:
    """Parameters of the tuning curves; arrays have one row per neuron.

    centres: (M, D) tuning-curve centres in scaled latent units.
    widths: (M,) tuning widths in scaled latent units.
    baseline: (M,) baseline intensity, spikes per bin.
    peak: (M,) peak intensity above baseline, spikes per bin.
    history: (M,) spike-history log-gain applied after a spike (negative: refractory).
    """

    centres: np.ndarray
    widths: np.ndarray
    baseline: np.ndarray
    peak: np.ndarray
    history: np.ndarray

    @classmethod
    def random(
        cls,
        n_neurons: int,
        latent_dim: int,
        rng: np.random.Generator,
        low: float = -2.0,
        high: float = 2.0,
        width_range: tuple[float, float] = (0.6, 1.4),
        baseline_range: tuple[float, float] = (0.0, 0.05),
        peak_range: tuple[float, float] = (0.5, 1.0),
        history_range: tuple[float, float] = (-1.5, -0.5),
    ) -> NeuronPopulation:
        """Draw a population: centres uniform in ``[low, high]^D``, other parameters uniform."""
        if n_neurons < 1:
            raise ValueError(f"n_neurons must be at least 1, got {n_neurons}")
        return cls(
            centres=rng.uniform(low, high, size=(n_neurons, latent_dim)),
            widths=rng.uniform(*width_range, size=n_neurons),
            baseline=rng.uniform(*baseline_range, size=n_neurons),
            peak=rng.uniform(*peak_range, size=n_neurons),
            history=rng.uniform(*history_range, size=n_neurons),
        )

    @property
    def n_neurons(self) -> int:
        return int(self.centres.shape[0])

    def rates(self, latents: np.ndarray) -> np.ndarray:
        """Tuning-curve intensity without spike history, spikes per bin: (..., D) -> (..., M)."""
        d2 = ((latents[..., None, :] - self.centres) ** 2).sum(-1)
        return self.baseline + self.peak * np.exp(-d2 / (2.0 * self.widths**2))


def simulate_spikes(
    latents: np.ndarray, population: NeuronPopulation, rng: np.random.Generator
) -> np.ndarray:
    """Draw spike trains for latent trajectories.

    Parameters
    ----------
    latents: (N, T, D) scaled latent trajectories.

    Returns
    -------
    (N, T, M) uint8 spikes in {0, 1} (Poisson counts clipped to 1).
    """
    if latents.ndim != 3 or latents.shape[-1] != population.centres.shape[1]:
        raise ValueError(
            f"latents must have shape (N, T, {population.centres.shape[1]}), got {latents.shape}"
        )
    n, t_len, _ = latents.shape
    tuning = population.rates(latents)  # (N, T, M)
    spikes = np.zeros((n, t_len, population.n_neurons), dtype=np.uint8)
    previous: np.ndarray = np.zeros((n, population.n_neurons))
    for t in range(t_len):
        lam = tuning[:, t] * np.exp(population.history * previous)
        spikes[:, t] = np.minimum(rng.poisson(lam), 1)
        previous = spikes[:, t]
    return spikes


def stack_history(signal: np.ndarray, history: int) -> np.ndarray:
    """Concatenate each step with its ``history - 1`` predecessors along the last axis.

    ``signal`` (N, T, M) -> (N, T, history * M); steps before the start repeat the first step.
    Block ``k`` of the result is the signal ``k`` steps back.
    """
    if history < 1:
        raise ValueError(f"history must be at least 1, got {history}")
    blocks = [signal]
    for lag in range(1, history):
        shifted = np.concatenate(
            [np.repeat(signal[:, :1], min(lag, signal.shape[1]), axis=1), signal[:, :-lag]], axis=1
        )[:, : signal.shape[1]]
        blocks.append(shifted)
    return np.concatenate(blocks, axis=-1)


def causal_smooth(signal: np.ndarray, sigma: float) -> np.ndarray:
    """One-sided Gaussian smoothing along axis 1: ``y_t = sum_k w_k s_{t-k}``, k = 0..ceil(4 sigma),
    ``w_k`` proportional to exp(-k^2 / (2 sigma^2)) and summing to 1; steps before the start
    repeat the first step.  ``signal`` (N, T, M), sigma in bins."""
    lags = np.arange(int(np.ceil(4 * sigma)) + 1)
    weights = np.exp(-0.5 * (lags / sigma) ** 2)
    weights /= weights.sum()
    t_len = signal.shape[1]
    padded = np.concatenate([np.repeat(signal[:, :1], len(lags) - 1, axis=1), signal], axis=1)
    out = np.zeros(signal.shape, dtype=np.float64)
    for k, w in enumerate(weights):
        start = len(lags) - 1 - k
        out += w * padded[:, start : start + t_len]
    return out


def preprocess_spikes(
    spikes: np.ndarray, keep: np.ndarray, smoothing_sigma: float = 2.0, history: int = 2,
    causal: bool = True,
) -> np.ndarray:
    """Smooth the kept neurons' spike trains and stack history (reference preprocessing).

    Parameters
    ----------
    spikes: (N, T, M) spikes.
    keep: (M,) boolean mask of the neurons to keep (e.g. those with >= 10 training spikes).
    smoothing_sigma: Gaussian kernel width in time bins (0 disables smoothing).
    causal: one-sided kernel over the current and past bins (default) or centred kernel.

    Returns
    -------
    (N, T, history * kept) float32 observations.
    """
    kept = spikes[..., keep].astype(np.float64)
    if smoothing_sigma > 0:
        kept = causal_smooth(kept, smoothing_sigma) if causal else gaussian_filter1d(
            kept, smoothing_sigma, axis=1, mode="nearest")
    return stack_history(kept, history).astype(np.float32)
