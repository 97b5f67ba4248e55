"""Simulated Lorenz decoding data sets (latent Lorenz states observed through spiking neurons).

Each trajectory ``i`` draws its initial state and its spike noise from its own random stream
(seeded by ``(seed, i)``), so a data set simulated in shards (``--shard i/n``) and merged is
identical to one simulated in one piece.  The neuron population, the latent scaling bounds and
the set of kept neurons depend only on the seed: they come from a calibration set made of the
first ``min(n_train, 64)`` training trajectories.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from physml_core.provenance import Provenance, to_attrs

from .dataset import SPLITS, SequenceData
from .lorenz import LORENZ_BETA, LORENZ_RHO, LORENZ_SIGMA, integrate_lorenz, minmax_scale
from .spikes import NeuronPopulation, preprocess_spikes

__all__ = ["LORENZ_SOURCE", "LorenzConfig", "simulate_lorenz", "trajectory_label"]

_CALIBRATION = 64


@dataclass
class LorenzConfig:
    """Configuration of ``alternators simulate lorenz``.

    n_train, n_val, n_test: trajectories per split.
    n_steps: samples per trajectory; dt: sampling interval in Lorenz time units.
    substeps: RK4 sub-steps per interval; burn_in: discarded intervals before sampling.
    n_neurons: simulated neurons; min_spikes: neurons with fewer calibration spikes are dropped.
    smoothing_sigma: Gaussian smoothing of spike trains, in bins; history: stacked steps.
    causal_smoothing: one-sided (causal) kernel, so forecasts see no future bins (default);
    False: the centred kernel of earlier versions.
    latent_noise_std: optional Gaussian noise added to the scaled latents before spiking.
    """

    n_train: int = 200
    n_val: int = 20
    n_test: int = 20
    n_steps: int = 400
    dt: float = 0.03
    substeps: int = 6
    burn_in: int = 300
    n_neurons: int = 100
    min_spikes: int = 10
    smoothing_sigma: float = 2.0
    causal_smoothing: bool = True
    history: int = 2
    latent_noise_std: float = 0.0
    save_spikes: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_train", "n_steps", "n_neurons", "history", "substeps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("n_val", "n_test", "burn_in", "min_spikes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if not self.dt > 0:
            raise ValueError(f"dt must be positive, got {self.dt}")
        if self.smoothing_sigma < 0 or self.latent_noise_std < 0:
            raise ValueError("smoothing_sigma and latent_noise_std must be non-negative")

    @property
    def n_total(self) -> int:
        return self.n_train + self.n_val + self.n_test


#: ``source`` of the provenance records of simulated Lorenz files (physml_core.provenance).
LORENZ_SOURCE = "alternators.lorenz"

#: Fields that change how a trajectory is observed or how many are drawn, not which latent
#: trajectory sequence ``i`` of a seed is.
_OBSERVATION_FIELDS = ("n_train", "n_val", "n_test", "n_neurons", "min_spikes",
                       "smoothing_sigma", "causal_smoothing", "history", "latent_noise_std",
                       "save_spikes", "seed")


def trajectory_label(config: LorenzConfig) -> str:
    """Provenance setting label of the "heldout" setting: the fields that decide sequence
    ``i``'s latent trajectory (steps, dt, substeps, burn-in), so the same seed observed through
    other neurons or split otherwise names the same sequences."""
    data = {k: v for k, v in asdict(config).items() if k not in _OBSERVATION_FIELDS}
    return "heldout:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _stream(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, purpose]))


def _raw_latents(config: LorenzConfig, indices: np.ndarray) -> np.ndarray:
    initial = np.stack([
        _stream(config.seed, int(i), 0).normal([0.0, 0.0, 25.0], [8.0, 8.0, 8.0])
        for i in indices
    ]) if len(indices) else np.zeros((0, 3))
    if len(indices) == 0:
        return np.zeros((0, config.n_steps, 3))
    return integrate_lorenz(initial, config.n_steps, dt=config.dt, substeps=config.substeps,
                            burn_in=config.burn_in)


def _spikes(config: LorenzConfig, latents: np.ndarray, indices: np.ndarray,
            population: NeuronPopulation) -> np.ndarray:
    n, t_len, _ = latents.shape
    if config.latent_noise_std > 0:
        noise = np.stack([_stream(config.seed, int(i), 2).normal(size=(t_len, 3))
                          for i in indices])
        latents = latents + config.latent_noise_std * noise
    uniforms = np.stack([_stream(config.seed, int(i), 1).random((t_len, population.n_neurons))
                         for i in indices]) if n else np.zeros((0, t_len, population.n_neurons))
    tuning = population.rates(latents)
    spikes = np.zeros((n, t_len, population.n_neurons), dtype=np.uint8)
    previous: np.ndarray = np.zeros((n, population.n_neurons))
    for t in range(t_len):
        lam = tuning[:, t] * np.exp(population.history * previous)
        # a Poisson count clipped to 1 is a Bernoulli draw with p = 1 - exp(-lambda)
        spikes[:, t] = uniforms[:, t] < -np.expm1(-lam)
        previous = spikes[:, t]
    return spikes


def simulate_lorenz(config: LorenzConfig | None = None,
                    shard: tuple[int, int] = (0, 1)) -> SequenceData:
    """Simulate the Lorenz spiking-decoding data set (or one shard of it).

    Returns
    -------
    SequenceData with x (N, T, history * kept_neurons) smoothed spikes with history,
    z (N, T, 3) Lorenz states min-max scaled to [-2, 2] (dimensionless), split labels,
    raw spikes (N, T, n_neurons) if ``save_spikes``, and the parameters as attributes.
    """
    from physml_core.cli import shard_bounds

    config = config or LorenzConfig()
    start, stop = shard_bounds(config.n_total, *shard)
    pop_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2**31 - 1]))
    population = NeuronPopulation.random(config.n_neurons, 3, pop_rng)

    calib_idx = np.arange(min(config.n_train, _CALIBRATION))
    calib_raw = _raw_latents(config, calib_idx)
    lo = calib_raw.reshape(-1, 3).min(0)
    hi = calib_raw.reshape(-1, 3).max(0)
    calib_spikes = _spikes(config, minmax_scale(calib_raw, lo, hi), calib_idx, population)
    counts = calib_spikes.sum(axis=(0, 1))
    keep = counts >= config.min_spikes
    if not keep.any():
        raise ValueError(
            f"no neuron fired {config.min_spikes} times in the calibration trajectories: "
            "lower min_spikes or raise n_steps"
        )

    indices = np.arange(start, stop)
    latents = minmax_scale(_raw_latents(config, indices), lo, hi)
    spikes = _spikes(config, latents, indices, population)
    x = preprocess_spikes(spikes, keep, config.smoothing_sigma, config.history,
                          causal=config.causal_smoothing)
    split = np.full(len(indices), SPLITS["test"], dtype=np.int8)
    split[indices < config.n_train + config.n_val] = SPLITS["val"]
    split[indices < config.n_train] = SPLITS["train"]
    attrs = {
        "generator": "alternators simulate lorenz",
        "lorenz_sigma": LORENZ_SIGMA,
        "lorenz_rho": LORENZ_RHO,
        "lorenz_beta": LORENZ_BETA,
        "dt_lorenz_time": config.dt,
        "integrator": f"RK4, {config.substeps} substeps per sample",
        "latent_scaling": "min-max to [-2, 2] per coordinate",
        "latent_raw_min": lo.tolist(),
        "latent_raw_max": hi.tolist(),
        "kept_neurons": np.flatnonzero(keep).tolist(),
        "setting": "heldout",
        "observation_model": "Gaussian tuning curves, spike history, Poisson clipped to {0,1}; "
                             f"{'causal' if config.causal_smoothing else 'centred'} Gaussian "
                             f"smoothing sigma {config.smoothing_sigma} bins, "
                             f"{config.history}-step history",
        "shard": f"{shard[0]}/{shard[1]}",
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        # one unit = one sequence: sequence i of (seed, trajectory label) is the same in any shard
        **to_attrs([Provenance(LORENZ_SOURCE, config.seed, trajectory_label(config), start, stop,
                               f"{shard[0]}/{shard[1]}")]),
    }
    return SequenceData(
        x=x, z=latents.astype(np.float32), split=split,
        spikes=spikes if config.save_spikes else None, attrs=attrs,
        source="simulate_lorenz",
    )
