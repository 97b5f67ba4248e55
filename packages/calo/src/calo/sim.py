"""A vectorised GFlash-style parametric shower simulator of the CaloGAN calorimeter.

The simulator follows the Grindhammer-Peters parametrisation used by Geant4's GFlash
(G. Grindhammer, S. Peters, arXiv hep-ex/0001020) on the CaloGAN geometry (:mod:`calo.geometry`):

1. Longitudinal profile: a gamma distribution in depth t (radiation lengths) whose ``T`` (depth
   of the maximum) and ``alpha`` fluctuate shower by shower as a correlated log-normal pair, with
   the sampling-calorimeter corrections.  Photons start after an exponential depth (mean 9/7 X0).
2. Lateral profile: the two-component (core + tail) radial profile
   ``f(r) = p 2 r Rc^2/(r^2+Rc^2)^2 + (1-p) 2 r Rt^2/(r^2+Rt^2)^2`` whose radii grow with depth,
   evaluated at relative depths tau = t / T up to ``tau_max`` (2.5) only, never extrapolated
   beyond (see :func:`_lateral`).
3. Hard spots: a fraction ``1 - soft_fraction`` of the energy is shared among
   ``spot_factor x 93 ln(Z) E^0.876`` spots (GFlash's count, scaled) of gamma-distributed energy.
4. Soft spots (not part of GFlash): a fraction ``soft_fraction`` of the energy is deposited by
   soft photons as many small spots (mean ``soft_spot_mev``, a falling Gamma(shape < 1)
   spectrum).  Their depth is the shower's gamma profile convolved with an exponential photon
   path (mean ``soft_path_x0``; closed form with incomplete gamma functions) and their lateral
   profile is GFlash's tail profile widened by ``soft_radius_factor``.  They give the long soft
   tail of the hit-cell spectrum, the high occupancy of layer 1 and the deep, wide deposits of
   layer 2 that CaloGAN's Geant4 sample shows.
5. Instead of drawing each spot, the number of spots in every cell is Poisson with mean = (number
   of spots) x (exact probability of the cell: closed-form integral of the radial profile over
   the rectangle), and the cell energy is the Gamma(count x shape) sum of their energies: two
   random numbers per cell and spot kind, whatever the energy.
6. Energy is conserved: the cells and the overflow (energy outside the 480 x 480 mm window, per
   layer) add up to the longitudinally contained energy.  There is no resolution term (CaloGAN's
   Geant4 setup counts energy in lead and argon alike); ``resolution_*`` and ``noise_mev`` are
   off-by-default options.

Everything is computed on arrays of shape (N, ...), so thousands of showers take a fraction of a
second.  The defaults are tuned so that the layer-0 energy fraction follows the reference values
of the public CaloGAN positron sample (about 0.72, 0.43, 0.26, 0.20 at 1, 10, 50, 100 GeV) and the
per-layer occupancy, widths and layer-2 fraction come near CaloGAN's Geant4 plots (README, "The
simulator").  It remains a parametric model, not Geant4.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.special import gammainc

from physml_core.cli import shard_bounds
from physml_core.config import to_dict
from physml_core.hdf5 import H5Reader
from physml_core.logging import progress
from physml_core.provenance import Provenance, from_attrs, merged_attrs, to_attrs

from .data import CALO_SCHEMA, H5Appender, concat_h5
from .geometry import LAYERS, X0_EFF_MM

__all__ = [
    "PARTICLES",
    "SimConfig",
    "file_provenance",
    "merge_files",
    "simulate_batches",
    "simulate_showers",
    "simulate_to_file",
]

PARTICLES = ("eplus", "gamma")
#: Stable integer of each particle in the seed sequence, so that e+ and gamma files of one seed
#: are independent streams.
PARTICLE_CODES = {"eplus": 1, "gamma": 2}
#: ``source`` of the provenance records of simulated files (physml_core.provenance).
SIM_SOURCE = "calo.sim"
#: Rows simulated per independently seeded block; shard files are cut from these blocks, so the
#: merged shards equal the unsharded file exactly.
BLOCK_ROWS = 1024


#: Largest relative depth tau = t / T at which GFlash's radial parameters are evaluated (see
#: :func:`_lateral`): deeper slices use the radii and core weight of ``tau = TAU_FIT_MAX``.
TAU_FIT_MAX = 2.5


@dataclass
class SimConfig:
    """Configuration of :func:`simulate_showers` (energies in GeV unless named ``_mev``, lengths
    in mm).

    Attributes
    ----------
    particle: ``"eplus"`` (positron) or ``"gamma"`` (photon).
    energy_min_gev, energy_max_gev: incident energies are uniform in this range (GeV).
    seed: base seed; block ``b`` of rows (rows ``1024 b .. 1024 b + 1023``) uses
        ``numpy.random.default_rng([seed, particle_code, b])``: the random stream depends on
        (seed, particle, row), so e+ and gamma files of one seed are independent.
    z_eff: effective atomic number used in the GFlash formulas.
    critical_energy_mev: critical energy E_c of the mix (y = E / E_c).
    moliere_radius_mm: Moliere radius R_M converting the lateral radii to mm.
    sampling_fraction_x0: F_s = X0_eff / (d_abs + d_act) of the sampling structure.
    t_shift_x0: calibration shift added to the depth of the maximum T (X0).
    spot_factor: multiplies the GFlash number of (hard) spots ``93 ln(Z) E^0.876``
        (smaller = fewer, larger spots = larger cell fluctuations).
    spot_shape: gamma shape of the energy of one hard spot (larger = more uniform spots).
    soft_fraction: fraction of the energy of GFlash's tail component deposited as soft spots
        (the low-energy photons' Compton and photo-electrons far from the axis); the rest of the
        tail and the whole core are hard spots.
    soft_spot_mev: mean energy of one soft spot (MeV).
    soft_spot_shape: gamma shape of the soft-spot energy; below 1 the spectrum falls from zero
        energy on (density ~ E^(shape-1) exp(-E / scale)), which gives the soft tail of the
        hit-cell spectrum.
    tau_max: GFlash's radial parameters are evaluated at ``min(tau, tau_max)`` (relative depth
        tau = t / T), so they are never extrapolated beyond the depths they were fitted at
        (default :data:`TAU_FIT_MAX`).
    resolution_stochastic, resolution_constant: an optional smearing of each shower's total
        deposit, ``a / sqrt(E/GeV) (+) b`` (relative). **Off (0) by default and not part of
        CaloGAN's Geant4 setup**, which counts the energy deposited in lead and argon alike, so
        its total fluctuates only through leakage; kept only to emulate a sampling calorimeter.
    noise_mev: standard deviation (MeV) of Gaussian electronic noise added to every cell after
        the shower is made; cells are then read out as ``max(E + noise, 0)`` (the files hold
        non-negative energies).  0 (off) by default; CaloGAN's Geant4 files carry no noise.
    slices: longitudinal sub-slices per read-out layer used to follow the lateral spread.
    """

    particle: Literal["eplus", "gamma"] = "eplus"
    energy_min_gev: float = 1.0
    energy_max_gev: float = 100.0
    seed: int = 0
    z_eff: float = 69.0
    critical_energy_mev: float = 10.0
    moliere_radius_mm: float = 25.0
    sampling_fraction_x0: float = X0_EFF_MM / 6.0
    t_shift_x0: float = -0.8
    spot_factor: float = 0.25
    spot_shape: float = 2.0
    soft_fraction: float = 0.15
    soft_spot_mev: float = 0.7
    soft_spot_shape: float = 0.5
    soft_path_x0: float = 4.0
    soft_radius_factor: float = 2.5
    tau_max: float = TAU_FIT_MAX
    resolution_stochastic: float = 0.0
    resolution_constant: float = 0.0
    noise_mev: float = 0.0
    slices: tuple[int, int, int] = (2, 4, 1)

    def __post_init__(self) -> None:
        if self.particle not in PARTICLES:
            raise ValueError(f"unknown particle {self.particle!r}: use one of {list(PARTICLES)}")
        if not 0 < self.energy_min_gev <= self.energy_max_gev:
            raise ValueError(
                "energies must satisfy 0 < energy_min_gev <= energy_max_gev, got "
                f"{self.energy_min_gev}..{self.energy_max_gev} GeV"
            )
        for name in ("critical_energy_mev", "moliere_radius_mm", "sampling_fraction_x0",
                     "spot_factor", "spot_shape", "z_eff", "soft_spot_mev", "soft_spot_shape",
                     "soft_path_x0", "soft_radius_factor", "tau_max"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.soft_fraction <= 1.0:
            raise ValueError(f"soft_fraction must lie in [0, 1], got {self.soft_fraction}")
        for name in ("resolution_stochastic", "resolution_constant", "noise_mev"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if len(self.slices) != 3 or any(int(s) < 1 for s in self.slices):
            raise ValueError(f"slices must be three positive integers, got {self.slices}")


def _quadrant(a: np.ndarray, b: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Probability of ``0 < x < a, 0 < y < b`` for the 2-D density R^2 / (pi (r^2 + R^2)^2).

    Closed form (odd in a and in b, so it also holds for negative edges):
    ``[a/sa atan(b/sa) + b/sb atan(a/sb)] / (2 pi)`` with ``sa = sqrt(a^2 + R^2)``.
    Shapes broadcast.
    """
    sa = np.sqrt(a * a + radius * radius)
    sb = np.sqrt(b * b + radius * radius)
    return (a / sa * np.arctan(b / sa) + b / sb * np.arctan(a / sb)) / (2.0 * np.pi)


def cell_probabilities(x_edges: np.ndarray, y_edges: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Probability that a spot of the radial profile with scale ``radius`` lands in each cell.

    ``x_edges`` (nx+1,), ``y_edges`` (ny+1,) in the same unit as ``radius`` (any shape ``S``).
    Returns shape ``S + (nx, ny)``; the sum is below 1 by the mass outside the window.
    """
    r = np.asarray(radius)[..., None, None]
    q = _quadrant(x_edges[:, None], y_edges[None, :], r)
    return q[..., 1:, 1:] - q[..., :-1, 1:] - q[..., 1:, :-1] + q[..., :-1, :-1]


def _longitudinal(
    cfg: SimConfig, energy_mev: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-shower gamma-profile parameters: (alpha, beta per X0, start depth in X0), each (N,)."""
    n = energy_mev.shape[0]
    ln_y = np.log(np.maximum(energy_mev / cfg.critical_energy_mev, 3.0))
    fs = cfg.sampling_fraction_x0
    e_hat = 1.0 / (1.0 + 0.007 * (82.0 - 18.0))  # lead absorber, argon active medium
    t_hom = np.maximum(ln_y - 0.812, 0.3)
    a_hom = 0.81 + (0.458 + 2.26 / cfg.z_eff) * ln_y
    t_mean = np.maximum(t_hom - 0.55 / fs - 0.69 * (1.0 - e_hat) + cfg.t_shift_x0, 0.3)
    a_mean = np.maximum(a_hom - 0.476 / fs, 1.2)
    sig_t = np.clip(1.0 / np.maximum(-2.5 + 1.25 * ln_y, 1e-3), 0.0, 0.5)
    sig_a = np.clip(1.0 / np.maximum(-0.82 + 0.79 * ln_y, 1e-3), 0.0, 0.5)
    rho = np.clip(0.784 - 0.023 * ln_y, -1.0, 1.0)
    z1, z2 = rng.standard_normal((2, n))
    c1, c2 = np.sqrt((1.0 + rho) / 2.0), np.sqrt((1.0 - rho) / 2.0)
    ln_t = np.log(t_mean) + sig_t * (c1 * z1 + c2 * z2)
    ln_a = np.log(a_mean) + sig_a * (c1 * z1 - c2 * z2)
    alpha = np.maximum(np.exp(ln_a), 1.05)
    beta = (alpha - 1.0) / np.exp(ln_t)
    start = (np.asarray(rng.exponential(9.0 / 7.0, size=n)) if cfg.particle == "gamma"
             else np.zeros(n))
    return alpha, beta, start


def _lateral(
    cfg: SimConfig, energy_gev: np.ndarray, tau: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GFlash core radius, tail radius (mm) and core weight at relative depth ``tau`` = t / T.

    Grindhammer-Peters' radial parametrisation (hep-ex/0001020, section on radial profiles,
    with the sampling-calorimeter corrections) is a fit of R_C, R_T and p as functions of tau
    and E.  Its tail radius grows as ``exp(k4 (tau - 0.645))``: evaluated far behind the
    maximum it explodes (at tau = 6, the depth of CaloGAN's last layer for a 1 GeV shower, it is
    about 6 R_M).  The parameters are therefore evaluated at ``min(tau, cfg.tau_max)``
    (default ``TAU_FIT_MAX = 2.5``): deeper slices keep the lateral shape of tau = 2.5.
    ``energy_gev`` broadcasts against ``tau``; outputs have the broadcast shape.
    """
    tau = np.clip(tau, 0.0, cfg.tau_max)
    z, fs = cfg.z_eff, cfg.sampling_fraction_x0
    e_hat = 1.0 / (1.0 + 0.007 * (82.0 - 18.0))
    ln_e = np.log(energy_gev)
    r_core = (0.0251 + 0.00319 * ln_e) + (0.1162 - 0.000381 * z) * tau
    r_core = r_core - 0.0203 * (1.0 - e_hat) + 0.0397 * np.exp(-tau) / fs
    k1, k4 = 0.659 - 0.00309 * z, 0.3585 + 0.0412 * ln_e
    r_tail = k1 * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
    r_tail = r_tail - 0.14 * (1.0 - e_hat) - 0.495 * np.exp(-tau) / fs
    p1, p2, p3 = 2.632 - 0.00094 * z, 0.401 + 0.00187 * z, 1.313 - 0.0686 * ln_e
    arg = (p2 - tau) / p3
    p = p1 * np.exp(arg - np.exp(arg))
    p = p + (1.0 - e_hat) * (0.348 - 0.642 * np.exp(-((tau - 1.0) ** 2)) / fs)
    r_core = np.maximum(r_core, 0.005) * cfg.moliere_radius_mm
    r_tail = np.maximum(r_tail, 2.0 * r_core / cfg.moliere_radius_mm) * cfg.moliere_radius_mm
    return r_core, r_tail, np.clip(p, 0.0, 1.0)


def _compound(
    rng: np.random.Generator, mean_count: np.ndarray, spot_mev: np.ndarray | float, shape: float
) -> np.ndarray:
    """Energy (MeV) of a Poisson number of spots with Gamma(shape, spot / shape) energies.

    ``mean_count`` (any shape), ``spot_mev`` broadcasts against it.  The sum of ``k``
    independent Gamma(shape) energies is Gamma(k shape), so the draw costs two random numbers
    per cell whatever the number of spots.
    """
    counts = rng.poisson(mean_count)
    return rng.gamma(shape * counts, 1.0) * (spot_mev / shape)


def simulate_showers(
    n: int,
    config: SimConfig | None = None,
    rng: np.random.Generator | int | None = None,
    energies_gev: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Simulate ``n`` showers; returns the CaloGAN arrays.

    Returns ``{"energy": (n, 1) GeV, "layer_0": (n, 3, 96), "layer_1": (n, 12, 12),
    "layer_2": (n, 12, 6), "overflow": (n, 3)}`` with cell energies in MeV (float32).
    ``energies_gev`` (shape (n,) or (n, 1)) fixes the incident energies instead of drawing them
    uniformly in the configured range.  ``rng`` is a Generator or a seed (default: config seed).
    """
    cfg = config or SimConfig()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"number of showers must be a non-negative integer, got {n!r}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng([PARTICLE_CODES[cfg.particle],
                                     cfg.seed if rng is None else int(rng)])
    if energies_gev is None:
        e_gev = rng.uniform(cfg.energy_min_gev, cfg.energy_max_gev, size=n)
    else:
        e_gev = np.asarray(energies_gev, dtype=np.float64).reshape(-1)
        if e_gev.shape[0] != n:
            raise ValueError(f"energies_gev has {e_gev.shape[0]} values for {n} showers")
        if not np.all(np.isfinite(e_gev)) or np.any(e_gev <= 0):
            raise ValueError("incident energies must be finite and positive (GeV)")
    e_mev = 1000.0 * e_gev
    alpha, beta, start = _longitudinal(cfg, e_mev, rng)
    fsoft = cfg.soft_fraction
    n_hard = np.maximum(cfg.spot_factor * 93.0 * np.log(cfg.z_eff) * e_gev**0.876, 10.0)
    e_hard = (1.0 - fsoft) * e_mev / n_hard  # mean energy of one hard spot (MeV), (n,)
    n_soft = fsoft * e_mev / cfg.soft_spot_mev  # mean number of soft spots, (n,)
    # Soft photons travel an exponential path (rate mu per X0) before depositing; the rate is
    # kept below the profile's beta so that the convolution below stays finite.
    mu = np.minimum(1.0 / cfg.soft_path_x0, 0.8 * beta)

    overflow = np.zeros((n, 3))
    contained = np.zeros(n)
    layers: list[np.ndarray] = []
    t_mean_shower = alpha / beta  # mean depth of the shower in X0 (after the start)
    for index, layer in enumerate(LAYERS):
        t0, t1 = layer.depth_x0
        edges = np.linspace(t0, t1, cfg.slices[index] + 1)
        local = np.maximum(edges[None, :] - start[:, None], 0.0)  # (n, S+1)
        a_, b_, m_ = alpha[:, None], beta[:, None], mu[:, None]
        cdf = gammainc(a_, b_ * local)
        cdf1 = gammainc(a_ + 1.0, b_ * local)
        cdf_soft = cdf - np.exp(-m_ * local + a_ * np.log(b_ / (b_ - m_))) * gammainc(
            a_, (b_ - m_) * local)
        frac = np.diff(cdf, axis=1)  # (n, S) hard energy fraction per slice
        frac_soft = np.maximum(np.diff(cdf_soft, axis=1), 0.0)  # soft energy fraction
        first_moment = t_mean_shower[:, None] * np.diff(cdf1, axis=1)
        t_in = np.where(frac > 1e-12, first_moment / np.maximum(frac, 1e-12),
                        0.5 * (local[:, 1:] + local[:, :-1]))
        t_max = (alpha[:, None] - 1.0) / beta[:, None]
        r_core, r_tail, p_core = _lateral(cfg, e_gev[:, None], t_in / t_max)  # (n, S)
        xe, ye = layer.x_edges_mm, layer.y_edges_mm
        prob_core = cell_probabilities(xe, ye, r_core)  # (n, S, rows, cols)
        prob_tail = cell_probabilities(xe, ye, r_tail)
        prob_soft = cell_probabilities(xe, ye, cfg.soft_radius_factor * r_tail)
        hard_map = np.einsum("ns,nsxy->nxy", frac * p_core, prob_core) + np.einsum(
            "ns,nsxy->nxy", frac * (1.0 - p_core), prob_tail)  # fraction of hard energy
        soft_map = np.einsum("ns,nsxy->nxy", frac_soft, prob_soft)  # fraction of soft energy
        contained += (1.0 - fsoft) * frac.sum(axis=1) + fsoft * frac_soft.sum(axis=1)
        hard_out = np.maximum(frac.sum(axis=1) - hard_map.sum(axis=(1, 2)), 0.0)
        soft_out = np.maximum(frac_soft.sum(axis=1) - soft_map.sum(axis=(1, 2)), 0.0)
        cells = (_compound(rng, n_hard[:, None, None] * hard_map, e_hard[:, None, None],
                           cfg.spot_shape)
                 + _compound(rng, n_soft[:, None, None] * soft_map, cfg.soft_spot_mev,
                             cfg.soft_spot_shape))
        layers.append(cells)
        overflow[:, index] = (
            _compound(rng, n_hard * hard_out, e_hard, cfg.spot_shape)
            + _compound(rng, n_soft * soft_out, cfg.soft_spot_mev, cfg.soft_spot_shape))
    # Spot counts fluctuate cell by cell; energy is conserved: the deposits (cells + overflow)
    # add up to the longitudinally contained energy.  No resolution term unless configured.
    total = overflow.sum(axis=1) + sum(c.sum(axis=(1, 2)) for c in layers)
    target = e_mev * contained
    if cfg.resolution_stochastic > 0 or cfg.resolution_constant > 0:
        sigma = np.hypot(cfg.resolution_stochastic / np.sqrt(e_gev), cfg.resolution_constant)
        target = target * np.maximum(1.0 + sigma * rng.standard_normal(n), 0.0)
    scale = np.where(total > 0, target / np.maximum(total, 1e-30), 0.0)
    out: dict[str, np.ndarray] = {"energy": e_gev.astype(np.float32)[:, None]}
    for layer, cells in zip(LAYERS, layers, strict=True):
        image = cells * scale[:, None, None]
        if cfg.noise_mev > 0:  # drawn last: the shower itself equals the noiseless one
            image = np.maximum(image + cfg.noise_mev * rng.standard_normal(image.shape), 0.0)
        out[layer.name] = image.astype(np.float32)
    out["overflow"] = (overflow * scale[:, None]).astype(np.float32)
    return out


def _block_rng(seed: int, particle: str, block: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), PARTICLE_CODES[particle], int(block)])


def simulate_batches(
    n: int, config: SimConfig | None = None, start: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Yield the rows ``start .. start + n`` of the infinite seeded stream, block by block.

    Row ``k`` of the stream depends only on the config (and its seed), never on how the stream is
    cut, which is what makes ``--shard i/n`` followed by a merge equal to one big run.
    """
    cfg = config or SimConfig()
    stop = start + n
    block = start // BLOCK_ROWS
    while block * BLOCK_ROWS < stop:
        lo = block * BLOCK_ROWS
        rows = simulate_showers(BLOCK_ROWS, cfg, rng=_block_rng(cfg.seed, cfg.particle, block))
        a, b = max(start, lo) - lo, min(stop, lo + BLOCK_ROWS) - lo
        yield {k: v[a:b] for k, v in rows.items()}
        block += 1


def simulate_to_file(
    path: str | Path,
    n: int,
    config: SimConfig | None = None,
    shard: tuple[int, int] = (0, 1),
    progress_bar: bool = False,
) -> int:
    """Simulate showers into a CaloGAN HDF5 file, streaming; returns the rows written.

    With ``shard=(i, k)`` only the i-th of k contiguous pieces of the ``n`` rows is written, so
    k batch jobs together produce exactly the rows of one unsharded run (see :func:`merge_files`).
    """

    cfg = config or SimConfig()
    i, k = shard
    if k < 1 or not 0 <= i < k:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{k}")
    if n < 1:
        raise ValueError(f"number of showers must be positive, got {n}")
    lo, hi = shard_bounds(n, i, k)

    prov = Provenance(SIM_SOURCE, int(cfg.seed), cfg.particle, lo, hi, f"{i}/{k}")
    attrs = {"generator": "calo.sim", "sim_config": to_dict(cfg), "shard": f"{i}/{k}",
             "rows_of_total": [lo, hi, n], **to_attrs([prov])}
    with H5Appender(path, CALO_SCHEMA, attrs=attrs) as out:
        bar = progress(total=hi - lo, desc="simulate", disable=None if progress_bar else True)
        for batch in simulate_batches(hi - lo, cfg, start=lo):
            out.append(batch)
            bar.update(len(batch["energy"]))
        bar.close()
        if hi == lo:
            out.append({k_: v[:0] for k_, v in simulate_showers(1, cfg).items()})
        return out.rows


def file_provenance(path: str | Path) -> list[Provenance] | None:
    """The provenance records of a CaloGAN file (None if it records none)."""
    with H5Reader(path, CALO_SCHEMA) as reader:
        return from_attrs(reader.attrs)


def merge_files(inputs: list[str | Path], output: str | Path) -> int:
    """Concatenate CaloGAN files (e.g. simulation shards) into ``output``; returns the rows.

    The output's provenance lists every input's records in order (contiguous ranges of one
    stream are joined); if any input records none, the output records none.
    """
    attrs: dict[str, object] = {"merged_from": len(inputs),
                                **merged_attrs([file_provenance(path) for path in inputs])}
    return concat_h5(list(inputs), output, CALO_SCHEMA, attrs=attrs)
