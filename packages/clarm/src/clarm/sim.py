"""Embedded proton-linac simulator: 6D macroparticle tracking with space charge (cheetah).

The lattice is a coupled-cavity-linac-like machine in the spirit of the LANSCE 805 MHz linac
that produced the CLARM data (Rautela, Williams, Scheinker, arXiv:2403.13858): protons enter at
100 MeV and every *module* adds about 15 MeV, so 48 modules reach about 830 MeV.  One module is
``cells_per_module`` FODO periods (cells)::

    QF  drift  [SC]  gap  drift  QD  drift  [SC]  gap  drift        (2 space-charge kicks/cell)

Coordinates are cheetah's (cheetah-accelerator >= 0.8): ``(x, px, y, py, tau, p, 1)`` with
``px = P_x / P_0``, ``tau = c t - s / beta_0`` (m; positive = late; bmad ``z = -beta tau``) and
``p = dE / (P_0 c)``, all relative to the *design* reference particle.  The design reference
is fixed per gap: it arrives at every gap at the design phase ``design_phase_deg`` and gains
exactly the design ``gain_per_gap_MeV``, whatever the run's RF errors.  RF amplitude and phase
errors therefore act on the beam and not on the reference: they shift the bunch centroid in
energy and arrival phase, and the offset travels downstream as a synchrotron oscillation, as in
a real machine.  The RF phase seen by a particle is ``phi_d + dphi_module + 2 pi tau / lambda``.

Drifts, quadrupoles and the FFT space-charge kick (integrated Green function, Hockney method;
applied about the beam centroid, so an off-centre bunch sits on the grid) are cheetah elements.
The RF gaps are thin-lens gaps written here (:func:`rf_gap_kick`), because cheetah's ``Cavity``
is a first-order transfer map for relativistic electrons and is longitudinally unstable for
100 MeV protons.  A thin gap (Wangler, *RF Linear Accelerators*, 2nd ed., sections 7.x) gives
each proton ``q V cos(phi)``, leaves ``tau`` unchanged (a thin gap changes no arrival time),
rescales ``px, py`` by ``P_0 / P_1`` (adiabatic damping) and applies the RF defocusing kick
``-pi q V sin(phi) x / (m c^2 (beta gamma)^3 lambda)``.  In the smooth approximation this gives
the longitudinal small-amplitude wave number of Wangler eq. (6.x),
``k_l0^2 = 2 pi q E0 T sin(-phi_s) / (m c^2 lambda (beta gamma)^3)`` (:func:`wangler_kl0`),
which a test checks against the tracked phase advance per cell.

Particles are lost (cheetah's ``survival_probabilities`` set to 0, removed from space charge,
images and moments) when they hit the bore (``aperture_radius_mm``) or leave the RF bucket
(``|phi| > bucket_half_width_deg`` from the design phase); the cumulative lost fraction and the
fraction of surviving particles outside the image window are stored per module.

Run settings (the dataset "labels") are drawn per run from :class:`SimConfig` ranges:

* ``amp_<m>``: RF amplitude of module m relative to design, uniform in 1 +- ``amp_spread``;
* ``phase_<m>``: RF phase offset of module m in degrees, uniform in +- ``phase_spread_deg``
  around the design synchronous phase ``design_phase_deg`` (-30 deg: before crest, bunching);
* ``quad_scale``: all quadrupole gradients relative to design, 1 +- ``quad_spread``;
* ``emit_x_scale``, ``emit_y_scale``: initial rms emittances relative to design,
  1 +- ``emit_spread``;
* ``mismatch``: initial beta-function mismatch factor (sigma_x^2 scales with it, sigma_x'^2
  with its inverse) in [1/``mismatch_max``, ``mismatch_max``] (log-uniform);
* ``charge_pC``: bunch charge in pC, uniform in ``charge_pC_range``.

At each module exit the 15 pairwise projections of (x, y, phi, x', y', dW/W) are deposited
(cloud in cell) on the fixed ranges of the public CLARM data (+-30 mm, +-10 mrad, +-60 deg,
+-1.3 %) into ``resolution x resolution`` images in the public channel order
(:data:`PROJECTIONS`), optionally smoothed by a Gaussian of ``blur_px`` pixels (the finite
resolution of a diagnostic), and stored as the fraction of the initial macroparticles per
pixel (lost particles are missing from the images).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_core.cli import shard_bounds
from physml_core.hdf5 import H5Appender, concat_h5
from physml_core.provenance import Provenance, from_attrs, merged_attrs, to_attrs

from .data import PHASE_SPACE_SCHEMA, check_resolution

__all__ = [
    "COORDINATES",
    "COORDINATE_UNITS",
    "DEFAULT_RANGES",
    "PROJECTIONS",
    "SIM_SOURCE",
    "SimConfig",
    "TrackResult",
    "dataset_id",
    "design_energies_eV",
    "draw_settings",
    "histogram_projections",
    "machine_id",
    "merge_shards",
    "rf_gap_kick",
    "run_provenance",
    "setting_names",
    "simulate",
    "simulate_runs",
    "space_charge_kick",
    "track_runs",
    "wangler_kl0",
]

SPEED_OF_LIGHT = 299_792_458.0  # m/s
PROTON_MASS_EV = 938.27208816e6  # eV

#: Phase-space coordinates (x, y, z, px, py, pz of the reference data) and their units.
COORDINATES: tuple[str, ...] = ("x", "y", "phi", "xp", "yp", "dW")
COORDINATE_UNITS: dict[str, str] = {
    "x": "mm", "y": "mm", "phi": "deg", "xp": "mrad", "yp": "mrad", "dW": "% of W",
}
_X, _Y, _PHI, _XP, _YP, _DW = range(6)
#: The 15 projections in the channel order of the public CLARM data (lanl/clarm names them
#: x-px, x-y, x-py, x-z, x-pz, y-px, y-py, y-z, y-pz, z-px, z-py, z-pz, px-py, px-pz, pz-py).
#: Each entry is (row coordinate, column coordinate) of the image.  Channel 1 is x-y,
#: channel 11 the E-phi projection (rows dW, columns phi, as the reference plots it),
#: channel 12 x'-y'.
PROJECTIONS: tuple[tuple[int, int], ...] = (
    (_X, _XP), (_X, _Y), (_X, _YP), (_X, _PHI), (_X, _DW),
    (_Y, _XP), (_Y, _YP), (_Y, _PHI), (_Y, _DW),
    (_PHI, _XP), (_PHI, _YP), (_DW, _PHI),
    (_XP, _YP), (_XP, _DW), (_DW, _YP),
)
#: Channel of the E-phi projection (the reference's forecasting channel).
E_PHI_CHANNEL = 11
#: Histogram half-widths of the public CLARM data, in COORDINATE_UNITS: +-3 cm, +-60 deg,
#: +-10 mrad, +-1.3 % of the reference energy.
DEFAULT_RANGES: dict[str, float] = {
    "x": 30.0, "y": 30.0, "phi": 60.0, "xp": 10.0, "yp": 10.0, "dW": 1.3,
}


def projection_names() -> list[str]:
    """Names like ``"x-y"`` (row-column) of the 15 channels."""
    return [f"{COORDINATES[a]}-{COORDINATES[b]}" for a, b in PROJECTIONS]


def setting_names(modules: int) -> list[str]:
    """Names of the per-run settings vector (length ``2 * modules + 5``)."""
    return ([f"amp_{m}" for m in range(modules)] + [f"phase_{m}" for m in range(modules)]
            + ["quad_scale", "emit_x_scale", "emit_y_scale", "mismatch", "charge_pC"])


@dataclass
class SimConfig:
    """Configuration of a simulation job (saved as JSON in the output file's attributes).

    Energies in MeV, lengths in m (mm where named), angles in degrees, charge in pC.
    """

    runs: int = 16
    modules: int = 12
    resolution: int = 64
    particles: int = 10_000
    seed: int = 0
    batch_runs: int = 8
    # lattice (design values)
    initial_energy_MeV: float = 100.0
    rf_frequency_MHz: float = 805.0
    gain_per_gap_MeV: float = 1.9
    design_phase_deg: float = -30.0
    cells_per_module: int = 4
    quad_length_m: float = 0.1
    quad_k1_per_m2: float = 12.0
    drift_length_m: float = 0.25
    aperture_radius_mm: float = 15.0
    bucket_half_width_deg: float = 120.0
    space_charge: bool = True
    space_charge_kicks_per_cell: int = 2
    space_charge_grid: int = 16
    # initial beam (design, rms): transverse geometric rms emittance at injection, Twiss
    # parameters matched to the periodic cell; energy spread matched to the RF bucket unless
    # given
    emittance_mm_mrad: float = 1.0
    sigma_phi_deg: float = 6.0
    sigma_dW_percent: float = 0.0
    # per-run setting ranges
    amp_spread: float = 0.02
    phase_spread_deg: float = 3.0
    quad_spread: float = 0.08
    emit_spread: float = 0.2
    mismatch_max: float = 1.3
    charge_pC_range: tuple[float, float] = (50.0, 100.0)
    # images
    blur_px: float = 1.0
    ranges: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RANGES))

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that cannot be simulated."""
        check_resolution(self.resolution)
        for name in ("runs", "modules", "particles", "batch_runs", "cells_per_module",
                     "space_charge_kicks_per_cell"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.space_charge_kicks_per_cell not in (1, 2, 4):
            raise ValueError("space_charge_kicks_per_cell must be 1, 2 or 4, got "
                             f"{self.space_charge_kicks_per_cell}")
        if self.modules > 64:
            raise ValueError(f"modules must be at most 64, got {self.modules}")
        if self.particles < 100:
            raise ValueError(f"particles must be at least 100, got {self.particles}")
        if set(self.ranges) != set(COORDINATES):
            raise ValueError(f"ranges must give a half-width for each of {COORDINATES}")
        if any(not (v > 0 and math.isfinite(v)) for v in self.ranges.values()):
            raise ValueError("every histogram half-width must be positive and finite")
        lo, hi = self.charge_pC_range
        if not 0 <= lo <= hi:
            raise ValueError(f"charge_pC_range must satisfy 0 <= lo <= hi, got {lo, hi}")
        if not 0 <= self.amp_spread < 0.5 or not 0 <= self.phase_spread_deg < 30:
            raise ValueError("amp_spread must be in [0, 0.5) and phase_spread_deg in [0, 30)")
        if self.mismatch_max < 1:
            raise ValueError(f"mismatch_max must be >= 1, got {self.mismatch_max}")
        if self.blur_px < 0:
            raise ValueError(f"blur_px must be >= 0, got {self.blur_px}")
        if not (self.aperture_radius_mm > 0 and self.bucket_half_width_deg > 0):
            raise ValueError("aperture_radius_mm and bucket_half_width_deg must be positive")
        if not -90 < self.design_phase_deg < 0:
            raise ValueError("design_phase_deg must be in (-90, 0) (bunching, accelerating)")
        if self.sigma_dW_percent < 0:
            raise ValueError("sigma_dW_percent must be >= 0 (0: matched to the bucket)")

    @property
    def wavelength_m(self) -> float:
        """RF wavelength in m."""
        return SPEED_OF_LIGHT / (self.rf_frequency_MHz * 1e6)

    @property
    def cell_length_m(self) -> float:
        """Length of one FODO cell (two quadrupoles, four drifts, two thin gaps) in m."""
        return 2 * self.quad_length_m + 4 * self.drift_length_m

    @property
    def design_voltage_V(self) -> float:
        """Effective gap voltage E0 T L in V that gives the design gain at the design phase."""
        return self.gain_per_gap_MeV * 1e6 / math.cos(math.radians(self.design_phase_deg))


def dataset_id(config: SimConfig) -> str:
    """Stable identifier of the data a config produces (independent of the run count)."""
    data = asdict(config)
    for key in ("runs", "batch_runs"):
        data.pop(key)
    data["physics"] = 2  # design-reference tracking, cheetah tau convention, public layout
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


#: ``source`` of the provenance records of simulated files (physml_core.provenance).
SIM_SOURCE = "clarm.sim"


#: Fields that change how a run is observed (images, macroparticle sampling, space-charge
#: resolution), not which machine and beam it is: runs differing only in these are the same runs.
_OBSERVATION_FIELDS = ("runs", "batch_runs", "seed", "resolution", "particles", "blur_px",
                       "ranges", "space_charge", "space_charge_kicks_per_cell",
                       "space_charge_grid")


def machine_id(config: SimConfig) -> str:
    """Label of the machine and beam whose runs ``config`` draws (lattice and per-run setting
    ranges, without the seed and the observation fields): the provenance setting label."""
    data = {k: v for k, v in asdict(config).items() if k not in _OBSERVATION_FIELDS}
    return "linac:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def run_provenance(config: SimConfig, start: int, stop: int,
                   shard: tuple[int, int] = (0, 1)) -> Provenance:
    """Provenance (:mod:`physml_core.provenance`) of runs ``[start, stop)`` of ``config``: the
    stream is (``"clarm.sim"``, seed, :func:`machine_id`), one unit is one run, so run ``k`` of
    a seed is the same run (same machine settings and beam) at any resolution or particle
    count, and a model trained on it must not be evaluated on it."""
    return Provenance(SIM_SOURCE, config.seed, machine_id(config), start, stop,
                      f"{shard[0]}/{shard[1]}")


def draw_settings(config: SimConfig, run_index: int) -> np.ndarray:
    """Settings vector of run ``run_index`` (deterministic in (seed, run_index)), shape (2M+5,)."""
    rng = np.random.default_rng([config.seed, run_index, 7])
    m = config.modules
    amp = 1.0 + rng.uniform(-config.amp_spread, config.amp_spread, m)
    phase = rng.uniform(-config.phase_spread_deg, config.phase_spread_deg, m)
    quad = 1.0 + rng.uniform(-config.quad_spread, config.quad_spread)
    emit = 1.0 + rng.uniform(-config.emit_spread, config.emit_spread, 2)
    mismatch = math.exp(rng.uniform(-1.0, 1.0) * math.log(config.mismatch_max))
    charge = rng.uniform(*config.charge_pC_range)
    return np.concatenate([amp, phase, [quad], emit, [mismatch, charge]]).astype(np.float64)


def design_settings(config: SimConfig) -> np.ndarray:
    """Settings vector of the design machine (no errors, nominal beam, mean charge)."""
    m = config.modules
    return np.concatenate([np.ones(m), np.zeros(m), [1.0, 1.0, 1.0, 1.0,
                                                     float(np.mean(config.charge_pC_range))]])


def _relativistic(energy_eV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gamma, beta, p c in eV) of protons of total energy ``energy_eV``."""
    gamma = energy_eV / PROTON_MASS_EV
    beta = (1.0 - gamma.pow(-2)).sqrt()
    return gamma, beta, (energy_eV.square() - PROTON_MASS_EV**2).sqrt()


def design_energies_eV(config: SimConfig) -> np.ndarray:
    """Total energy (eV) of the design reference before gap g, g = 0 .. 2 * cells * modules
    (the last entry is the exit energy): it gains exactly ``gain_per_gap_MeV`` per gap."""
    gaps = 2 * config.cells_per_module * config.modules
    return (config.initial_energy_MeV * 1e6 + PROTON_MASS_EV
            + config.gain_per_gap_MeV * 1e6 * np.arange(gaps + 1, dtype=np.float64))


def wangler_kl0(config: SimConfig, kinetic_MeV: float, amp: float = 1.0) -> float:
    """Small-amplitude longitudinal wave number k_l0 (1/m) of the smooth approximation
    (Wangler, RF Linear Accelerators, eq. 6.x):
    ``k_l0^2 = 2 pi q E0 T sin(-phi_s) / (m c^2 lambda (beta gamma)^3)``, with the average
    accelerating field E0 T = V / (gap spacing) and gap spacing = half a cell."""
    gamma = 1.0 + kinetic_MeV * 1e6 / PROTON_MASS_EV
    bg = math.sqrt(gamma**2 - 1.0)
    e0t = amp * config.design_voltage_V / (config.cell_length_m / 2)
    k2 = (2 * math.pi * e0t * math.sin(-math.radians(config.design_phase_deg))
          / (PROTON_MASS_EV * config.wavelength_m * bg**3))
    return math.sqrt(k2)


def rf_gap_kick(
    particles: torch.Tensor,
    energy_eV: torch.Tensor,
    voltage_V: torch.Tensor,
    phase_deg: torch.Tensor,
    wavelength_m: float,
    design_gain_eV: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin RF gap acting on cheetah particle coordinates relative to a design reference.

    ``particles``: (B, N, 7) as (x, px, y, py, tau, p, 1), tau = c t - s / beta0 in m (positive
    = late), p = dE / (P0 c); ``energy_eV``: (B,) design reference total energy at the gap;
    ``voltage_V`` and ``phase_deg``: (B,) the run's effective gap voltage E0 T L and RF phase
    at the design arrival time (0 = crest, negative = before crest); ``design_gain_eV``: the
    design reference's energy gain.  The particle at tau sees ``phase + 360 tau / lambda``.
    Returns the new particles (relative to the design reference after the gap) and the design
    reference energy after the gap.
    """
    _, _, p0c = _relativistic(energy_eV)
    energy1 = energy_eV + design_gain_eV
    gamma1, beta1, p1c = _relativistic(energy1)
    phi = torch.deg2rad(phase_deg)[:, None] + 2.0 * math.pi * particles[..., 4] / wavelength_m
    gain = voltage_V[:, None] * torch.cos(phi)
    out = particles.clone()
    out[..., 5] = (particles[..., 5] * p0c[:, None] + gain - design_gain_eV) / p1c[:, None]
    bg3 = (0.5 * (beta1 * gamma1 + p0c / PROTON_MASS_EV)).pow(3)[:, None]
    defocus = -math.pi * voltage_V[:, None] * torch.sin(phi) / (PROTON_MASS_EV * bg3
                                                                * wavelength_m)
    damping = (p0c / p1c)[:, None]
    out[..., 1] = particles[..., 1] * damping + defocus * particles[..., 0]
    out[..., 3] = particles[..., 3] * damping + defocus * particles[..., 2]
    return out, energy1


def space_charge_kick(kick: Any, particles: torch.Tensor, energy_eV: torch.Tensor,
                      charges_C: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Apply a cheetah ``SpaceChargeKick`` about the beam centroid (the field does not depend
    on where the bunch sits, cheetah's grid is centred on 0).  ``charges_C``: (B, N)
    macroparticle charges; ``alive``: (B, N) survival (0 = lost, no charge)."""
    import cheetah

    w = alive / alive.sum(dim=1, keepdim=True).clamp_min(1.0)
    centre = torch.zeros_like(particles[:, :1, :])
    centre[..., [0, 2, 4]] = (particles[..., [0, 2, 4]] * w[..., None]).sum(dim=1,
                                                                            keepdim=True)
    beam = cheetah.ParticleBeam(particles=particles - centre, energy=energy_eV,
                                particle_charges=charges_C, survival_probabilities=alive,
                                species=cheetah.Species("proton"))
    return kick.track(beam).particles + centre


def histogram_projections(
    coords: torch.Tensor, half_widths: Sequence[float], resolution: int, blur_px: float = 0.0,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cloud-in-cell histograms of the 15 projections.

    ``coords``: (B, N, 6) in COORDINATES order and units; ``weights``: (B, N) (default 1/N
    each).  Returns (B, 15, H, W) float32: the weight per pixel, rows = the first coordinate
    of the :data:`PROJECTIONS` pair (increasing with the row index), columns = the second.
    """
    b, n, _ = coords.shape
    h = resolution
    if weights is None:
        weights = torch.full((b, n), 1.0 / n, dtype=coords.dtype)
    half = torch.as_tensor(half_widths, dtype=coords.dtype)
    u = (coords / half + 1.0) * (h / 2.0) - 0.5  # pixel-centre coordinates
    images = torch.zeros(b, len(PROJECTIONS), h * h, dtype=coords.dtype)
    for c, (i, j) in enumerate(PROJECTIONS):
        ur, uc = u[..., i], u[..., j]
        r0, c0 = ur.floor(), uc.floor()
        fr, fc = ur - r0, uc - c0
        for dr, wr in ((0, 1 - fr), (1, fr)):
            for dc, wc in ((0, 1 - fc), (1, fc)):
                row, col = r0 + dr, c0 + dc
                ok = (col >= 0) & (col < h) & (row >= 0) & (row < h)
                flat = (row.clamp(0, h - 1) * h + col.clamp(0, h - 1)).long()
                images[:, c].scatter_add_(1, flat, torch.where(ok, wr * wc * weights, 0.0))
    images = images.view(b, len(PROJECTIONS), h, h)
    if blur_px > 0:
        radius = max(1, math.ceil(3 * blur_px))
        x = torch.arange(-radius, radius + 1, dtype=coords.dtype)
        kernel = torch.exp(-0.5 * (x / blur_px) ** 2)
        kernel = kernel / kernel.sum()
        flat = images.reshape(b * len(PROJECTIONS), 1, h, h)
        flat = torch.nn.functional.conv2d(flat, kernel.view(1, 1, 1, -1), padding=(0, radius))
        flat = torch.nn.functional.conv2d(flat, kernel.view(1, 1, -1, 1), padding=(radius, 0))
        images = flat.view(b, len(PROJECTIONS), h, h)
    return images.float()


def _to_physical(particles: torch.Tensor, energy_eV: torch.Tensor,
                 wavelength_m: float) -> torch.Tensor:
    """Cheetah coordinates (B, N, 7) -> (B, N, 6) in COORDINATES order and units, relative to
    the design reference: phi = 360 tau / lambda (deg, positive = late), dW = dE / W0 (%)."""
    _, _, pc = _relativistic(energy_eV)
    kinetic = energy_eV - PROTON_MASS_EV
    x = particles[..., 0] * 1e3
    xp = particles[..., 1] * 1e3
    y = particles[..., 2] * 1e3
    yp = particles[..., 3] * 1e3
    phi = particles[..., 4] / wavelength_m * 360.0
    dw = particles[..., 5] * (pc / kinetic)[:, None] * 100.0
    return torch.stack([x, y, phi, xp, yp, dw], dim=-1)


def matched_sigma_p(config: SimConfig) -> float:
    """rms p = dE/(P0 c) of a bunch of rms length ``sigma_phi_deg`` matched to the design
    bucket at injection (smooth approximation): sigma_p = (beta gamma)^2 k_l0 sigma_tau."""
    gamma = 1.0 + config.initial_energy_MeV / (PROTON_MASS_EV / 1e6)
    bg2 = gamma**2 - 1.0
    sigma_tau = config.sigma_phi_deg / 360.0 * config.wavelength_m
    return bg2 * wangler_kl0(config, config.initial_energy_MeV) * sigma_tau


def _quad_matrix(k: float, length: float) -> np.ndarray:
    """2x2 transfer matrix of a thick quadrupole (k > 0 focusing) in one plane."""
    if abs(k) < 1e-12:
        return np.array([[1.0, length], [0.0, 1.0]])
    w = math.sqrt(abs(k))
    if k > 0:
        return np.array([[math.cos(w * length), math.sin(w * length) / w],
                         [-w * math.sin(w * length), math.cos(w * length)]])
    return np.array([[math.cosh(w * length), math.sinh(w * length) / w],
                     [w * math.sinh(w * length), math.cosh(w * length)]])


def periodic_twiss(config: SimConfig, quad_scale: float = 1.0) -> tuple[float, float, float,
                                                                         float]:
    """(beta_x, alpha_x, beta_y, alpha_y) in (m, 1) of the periodic solution of one cell at the
    injection energy (thick quadrupoles, thin RF-defocusing lenses; acceleration neglected),
    at the cell entrance."""
    k1 = config.quad_k1_per_m2 * quad_scale
    gamma = 1.0 + config.initial_energy_MeV / (PROTON_MASS_EV / 1e6)
    bg3 = (gamma**2 - 1.0) ** 1.5
    f_inv = (math.pi * config.design_voltage_V * math.sin(-math.radians(config.design_phase_deg))
             / (PROTON_MASS_EV * bg3 * config.wavelength_m))
    drift = np.array([[1.0, config.drift_length_m], [0.0, 1.0]])
    gap = np.array([[1.0, 0.0], [f_inv, 1.0]])
    out = []
    for sign in (1.0, -1.0):
        qf = _quad_matrix(sign * k1, config.quad_length_m)
        qd = _quad_matrix(-sign * k1, config.quad_length_m)
        cell = drift @ gap @ drift @ qd @ drift @ gap @ drift @ qf
        cos_mu = 0.5 * np.trace(cell)
        if not abs(cos_mu) < 1:
            raise ValueError("the focusing lattice has no periodic solution (|cos mu| >= 1)")
        sin_mu = math.copysign(math.sqrt(1 - cos_mu**2), cell[0, 1])
        out += [cell[0, 1] / sin_mu, (cell[0, 0] - cell[1, 1]) / (2 * sin_mu)]
    return out[0], out[1], out[2], out[3]


def _initial_particles(config: SimConfig, settings: np.ndarray, run_index: int) -> torch.Tensor:
    """Gaussian initial beam (N, 7) in cheetah coordinates for one run, centred on the design
    reference, transversely matched to the periodic cell of the design lattice, then scaled
    by the run's emittance and mismatch settings."""
    m = config.modules
    emit_x, emit_y, mismatch = settings[2 * m + 1], settings[2 * m + 2], settings[2 * m + 3]
    gen = torch.Generator().manual_seed(int(config.seed) * 100_003 + int(run_index))
    z = torch.randn(config.particles, 6, generator=gen, dtype=torch.float64)
    _, _, pc = _relativistic(torch.tensor(config.initial_energy_MeV * 1e6 + PROTON_MASS_EV,
                                          dtype=torch.float64))
    bx, ax, by, ay = periodic_twiss(config)
    eps = config.emittance_mm_mrad * 1e-6
    parts = torch.ones(config.particles, 7, dtype=torch.float64)
    for col, (beta, alpha, scale, mis) in enumerate(((bx, ax, emit_x, mismatch),
                                                     (by, ay, emit_y, 1.0 / mismatch))):
        beta, e = beta * mis, eps * scale
        u, v = z[:, 2 * col], z[:, 2 * col + 1]
        parts[:, 2 * col] = math.sqrt(e * beta) * u
        parts[:, 2 * col + 1] = math.sqrt(e / beta) * (v - alpha * u)
    stau = config.sigma_phi_deg / 360.0 * config.wavelength_m
    if config.sigma_dW_percent > 0:
        sp = config.sigma_dW_percent / 100.0 * config.initial_energy_MeV * 1e6 / float(pc)
    else:
        sp = matched_sigma_p(config)
    parts[:, 4] = z[:, 4] * stau
    parts[:, 5] = z[:, 5] * sp
    return parts.float()


@dataclass
class TrackResult:
    """Per-module output of :func:`track_runs` (B runs, M modules)."""

    images: np.ndarray            # (B, M, 15, H, H) float32, fraction of initial particles
    energy_MeV: np.ndarray        # (B, M) mean kinetic energy of the surviving particles
    lost_fraction: np.ndarray     # (B, M) cumulative fraction of particles lost
    outside_fraction: np.ndarray  # (B, M) surviving particles outside the image window
    centroid: np.ndarray          # (B, M, 6) mean of (x, y, phi, xp, yp, dW), COORDINATE_UNITS
    rms: np.ndarray               # (B, M, 6) rms of the same
    cell_centroid: np.ndarray     # (B, M * cells, 6) centroid at every cell exit


def track_runs(config: SimConfig, settings: np.ndarray, run_indices: Sequence[int],
               images: bool = True) -> TrackResult:
    """Track a batch of runs with explicit settings (see :func:`simulate_runs`)."""
    import cheetah

    settings = np.asarray(settings, dtype=np.float64)
    m = config.modules
    if settings.ndim != 2 or settings.shape[1] != 2 * m + 5:
        raise ValueError(f"settings must have shape (B, {2 * m + 5}), got {settings.shape}")
    b, n = settings.shape[0], config.particles
    lam = config.wavelength_m
    parts = torch.stack([_initial_particles(config, settings[k], run_indices[k])
                         for k in range(b)])
    alive = torch.ones(b, n)
    charge = torch.as_tensor(settings[:, 2 * m + 4] * 1e-12, dtype=torch.float32)
    charges = (charge[:, None] / n).expand(b, n).contiguous()
    k1 = torch.as_tensor(config.quad_k1_per_m2 * settings[:, 2 * m], dtype=torch.float32)
    energies = design_energies_eV(config)
    gain = config.gain_per_gap_MeV * 1e6

    def t(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float32)

    # one cell = 8 pieces; the space-charge kicks follow the pieces listed in `kick_after`
    qf = cheetah.Quadrupole(length=t(config.quad_length_m), k1=k1)
    qd = cheetah.Quadrupole(length=t(config.quad_length_m), k1=-k1)
    drift = cheetah.Drift(length=t(config.drift_length_m))
    pieces = [qf, drift, "gap", drift, qd, drift, "gap", drift]
    kicks = config.space_charge_kicks_per_cell
    kick_after = {1: {3}, 2: {1, 5}, 4: {1, 3, 5, 7}}[kicks]
    sc = cheetah.SpaceChargeKick(effect_length=t(config.cell_length_m / kicks),
                                 grid_shape=(config.space_charge_grid,) * 3)
    volt0 = config.design_voltage_V
    half = [config.ranges[c] for c in COORDINATES]
    res = config.resolution
    out_images = np.zeros((b, m, len(PROJECTIONS), res, res) if images else (b, m, 0, 0, 0),
                          np.float32)
    energy_mev = np.zeros((b, m))
    lost = np.zeros((b, m))
    outside = np.zeros((b, m))
    centroid = np.zeros((b, m, 6))
    rms = np.zeros((b, m, 6))
    cells = config.cells_per_module
    cell_centroid = np.zeros((b, m * cells, 6))
    aperture2 = (config.aperture_radius_mm * 1e-3) ** 2
    tau_max = config.bucket_half_width_deg / 360.0 * lam

    def moments(p: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor]:
        coords = _to_physical(p.double(), e.double(), lam)
        w = alive.double() / alive.double().sum(1, keepdim=True).clamp_min(1.0)
        mean = (coords * w[..., None]).sum(1)
        var = ((coords - mean[:, None]).square() * w[..., None]).sum(1)
        return coords, mean, var.sqrt()

    proton = cheetah.Species("proton")
    gap = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in range(m):
            volt = torch.as_tensor(volt0 * settings[:, module], dtype=torch.float32)
            phase = torch.as_tensor(config.design_phase_deg + settings[:, m + module],
                                    dtype=torch.float32)
            for cell in range(cells):
                for i, piece in enumerate(pieces):
                    energy = torch.full((b,), energies[gap], dtype=torch.float32)
                    if isinstance(piece, str):
                        parts, _ = rf_gap_kick(parts, energy, volt, phase, lam, gain)
                        gap += 1
                    else:
                        parts = piece.track(cheetah.ParticleBeam(
                            particles=parts, energy=energy, particle_charges=charges,
                            species=proton)).particles
                    if config.space_charge and i in kick_after:
                        parts = space_charge_kick(sc, parts, energy, charges, alive)
                # losses: bore aperture and RF bucket, checked at every cell exit
                gone = ((parts[..., 0].square() + parts[..., 2].square() > aperture2)
                        | (parts[..., 4].abs() > tau_max) | ~parts[..., :6].isfinite().all(-1))
                gone &= alive > 0
                if bool(gone.any()):
                    alive = alive.masked_fill(gone, 0.0)
                    parts = parts.masked_fill(gone[..., None] & (torch.arange(7) < 6), 0.0)
                e_now = torch.full((b,), energies[gap], dtype=torch.float64)
                _, mean, _ = moments(parts, e_now)
                cell_centroid[:, module * cells + cell] = mean.numpy()
            e_now = torch.full((b,), energies[gap], dtype=torch.float64)
            coords, mean, sig = moments(parts, e_now)
            centroid[:, module], rms[:, module] = mean.numpy(), sig.numpy()
            lost[:, module] = 1.0 - alive.double().mean(1).numpy()
            kinetic = (energies[gap] - PROTON_MASS_EV) / 1e6
            energy_mev[:, module] = kinetic * (1.0 + mean[:, _DW].numpy() / 100.0)
            inside = (coords.abs() <= torch.as_tensor(half, dtype=torch.float64)).all(-1)
            n_alive = alive.double().sum(1).clamp_min(1.0)
            outside[:, module] = ((~inside).double() * alive).sum(1).numpy() / n_alive.numpy()
            if images:
                out_images[:, module] = histogram_projections(
                    coords, half, res, config.blur_px, weights=alive.double() / n).numpy()
    if images and not np.isfinite(out_images).all():
        raise ValueError("simulation produced non-finite images; check the lattice settings")
    return TrackResult(images=out_images, energy_MeV=energy_mev, lost_fraction=lost,
                       outside_fraction=outside, centroid=centroid, rms=rms,
                       cell_centroid=cell_centroid)


def simulate_runs(
    config: SimConfig, settings: np.ndarray, run_indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Track a batch of runs with explicit settings.

    ``settings``: (B, 2M+5) as from :func:`draw_settings`; ``run_indices``: (B,) used to seed
    each run's initial particles.  Returns ``images`` (B, M, 15, H, H) float32 and
    ``energy_MeV`` (B, M), the mean kinetic energy of the surviving particles at each module
    exit.  :func:`track_runs` returns losses and moments as well.
    """
    result = track_runs(config, settings, run_indices)
    return result.images, result.energy_MeV


def simulate(
    config: SimConfig, output: str | Path, shard: tuple[int, int] = (0, 1),
    progress_bar: bool = True,
) -> Path:
    """Simulate runs ``shard`` of ``config.runs`` and stream them into the HDF5 ``output``.

    Runs are seeded by (seed, global run index), so shards merged with :func:`merge_shards`
    equal one unsharded file.
    """
    from physml_core.logging import progress

    config.validate()
    start, stop = shard_bounds(config.runs, *shard)
    attrs = _file_attrs(config)
    attrs["run_offset"] = start
    attrs.update(to_attrs([run_provenance(config, start, stop, shard)]))
    with H5Appender(output, PHASE_SPACE_SCHEMA, attrs=attrs, chunk_rows=1) as out:
        bar = progress(total=stop - start, desc="simulate", disable=None if progress_bar else True)
        for lo in range(start, stop, config.batch_runs):
            hi = min(stop, lo + config.batch_runs)
            idx = list(range(lo, hi))
            settings = np.stack([draw_settings(config, i) for i in idx])
            res = track_runs(config, settings, idx)
            out.append({"images": res.images, "settings": settings.astype(np.float32),
                        "energy_MeV": res.energy_MeV.astype(np.float32),
                        "lost_fraction": res.lost_fraction.astype(np.float32),
                        "outside_fraction": res.outside_fraction.astype(np.float32),
                        "run_index": np.asarray(idx, dtype=np.int64)})
            bar.update(hi - lo)
        bar.close()
    return Path(output)


def _file_attrs(config: SimConfig) -> dict:
    half = [config.ranges[c] for c in COORDINATES]
    return {
        "source": "clarm.sim (cheetah proton linac)",
        "modules": config.modules,
        "resolution": config.resolution,
        "projection_names": projection_names(),
        "projection_pairs": [list(p) for p in PROJECTIONS],
        "coordinates": list(COORDINATES),
        "coordinate_units": [COORDINATE_UNITS[c] for c in COORDINATES],
        "coordinate_ranges": [[-h, h] for h in half],
        "setting_names": setting_names(config.modules),
        "image_unit": "fraction of the initial macroparticles per pixel",
        "image_axes": "rows: first coordinate of the projection name, columns: second",
        "sim_config": asdict(config),
        "dataset_id": dataset_id(config),
    }


def merge_shards(inputs: Sequence[str | Path], output: str | Path) -> int:
    """Concatenate shard files (checked to share modules, resolution and dataset id).

    The output's provenance lists every input's records in run order (contiguous ranges of
    one stream are joined); if any input records none, the output records none."""
    from physml_core.errors import DataFormatError
    from physml_core.hdf5 import H5Reader

    if not inputs:
        raise ValueError("merge needs at least one input file")
    ids, offsets, found = set(), [], []
    for path in inputs:
        with H5Reader(path, PHASE_SPACE_SCHEMA) as reader:
            attrs = reader.attrs
            ids.add((attrs.get("dataset_id"), attrs.get("modules"), attrs.get("resolution")))
            offsets.append(int(attrs.get("run_offset", 0)))
            found.append(from_attrs(attrs))
    if len(ids) > 1:
        raise DataFormatError(f"shards come from different simulations: {sorted(map(str, ids))}")
    ranked = sorted(zip(offsets, inputs, found, strict=True), key=lambda t: t[0])
    merged: dict[str, object] = {"run_offset": 0, "merged_from": len(inputs),
                                 **merged_attrs([prov for _, _, prov in ranked])}
    return concat_h5([p for _, p, _ in ranked], output, PHASE_SPACE_SCHEMA, batch_size=8,
                     attrs=merged)
