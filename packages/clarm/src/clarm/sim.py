"""Embedded proton-linac simulator: 6D macroparticle tracking with space charge (cheetah).

The lattice is a coupled-cavity-linac-like machine in the spirit of the LANSCE 805 MHz linac
that produced the CLARM data (Rautela, Williams, Scheinker, arXiv:2403.13858): protons enter at
100 MeV and every *module* adds about 15 MeV, so 48 modules reach about 830 MeV.  One module is
``cells_per_module`` FODO periods::

    QF  drift  [space charge]  RF gap  drift  QD  drift  RF gap  drift

Drifts, quadrupoles and the FFT space-charge kick (integrated Green function, Hockney method)
are cheetah elements (cheetah-accelerator, Kaiser et al. 2024).  The RF gaps are thin-lens
gaps written here (:func:`rf_gap_kick`) on cheetah's particle coordinates, because cheetah's
``Cavity`` is a first-order transfer map for relativistic electrons and is longitudinally
unstable for 100 MeV protons.  A thin gap (Wangler, *RF Linear Accelerators*, ch. 7) gives each
proton ``q V cos(phi)``, scales the transverse momenta by ``p_in/p_out`` (adiabatic damping) and
applies the RF defocusing kick ``-pi q V sin(phi) x / (m c^2 (beta gamma)^3 lambda)``.

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
(cloud in cell) on fixed ranges into ``resolution x resolution`` images, optionally smoothed
by a Gaussian of ``blur_px`` pixels (the finite resolution of a diagnostic), and stored as the
fraction of macroparticles per pixel.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from physml_core.cli import shard_bounds
from physml_core.hdf5 import H5Appender, concat_h5

from .data import PHASE_SPACE_SCHEMA, check_resolution

__all__ = [
    "COORDINATES",
    "COORDINATE_UNITS",
    "DEFAULT_RANGES",
    "PROJECTIONS",
    "SimConfig",
    "dataset_id",
    "draw_settings",
    "histogram_projections",
    "merge_shards",
    "rf_gap_kick",
    "setting_names",
    "simulate",
    "simulate_runs",
]

SPEED_OF_LIGHT = 299_792_458.0  # m/s
PROTON_MASS_EV = 938.27208816e6  # eV

#: Phase-space coordinates in image order (the order of the reference data: x, y, z, px, py, pz).
COORDINATES: tuple[str, ...] = ("x", "y", "phi", "xp", "yp", "dW")
COORDINATE_UNITS: dict[str, str] = {
    "x": "mm", "y": "mm", "phi": "deg", "xp": "mrad", "yp": "mrad", "dW": "% of W",
}
#: The 15 projections (pairs of coordinate indices), channel order of the images.
#: Channel 0 is x-y, channel 11 is phi-dW (the "E-phi" projection), channel 12 is x'-y'.
PROJECTIONS: tuple[tuple[int, int], ...] = tuple(itertools.combinations(range(6), 2))
#: Default fixed histogram ranges (half-widths around 0) per coordinate, in COORDINATE_UNITS.
DEFAULT_RANGES: dict[str, float] = {
    "x": 8.0, "y": 8.0, "phi": 20.0, "xp": 4.0, "yp": 4.0, "dW": 0.6,
}


def projection_names() -> list[str]:
    """Names like ``"x-y"`` of the 15 channels."""
    return [f"{COORDINATES[a]}-{COORDINATES[b]}" for a, b in PROJECTIONS]


def setting_names(modules: int) -> list[str]:
    """Names of the per-run settings vector (length ``2 * modules + 5``)."""
    return ([f"amp_{m}" for m in range(modules)] + [f"phase_{m}" for m in range(modules)]
            + ["quad_scale", "emit_x_scale", "emit_y_scale", "mismatch", "charge_pC"])


@dataclass
class SimConfig:
    """Configuration of a simulation job (saved as JSON in the output file's attributes).

    Energies in MeV, lengths in m, angles in degrees, charge in pC.
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
    space_charge: bool = True
    space_charge_kicks_per_module: int = 2
    space_charge_grid: int = 16
    # initial beam (design, rms)
    sigma_x_mm: float = 1.0
    sigma_xp_mrad: float = 0.5
    sigma_phi_deg: float = 6.0
    sigma_dW_percent: float = 0.045
    # per-run setting ranges
    amp_spread: float = 0.02
    phase_spread_deg: float = 3.0
    quad_spread: float = 0.08
    emit_spread: float = 0.2
    mismatch_max: float = 1.3
    charge_pC_range: tuple[float, float] = (10.0, 30.0)
    # images
    blur_px: float = 1.0
    ranges: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RANGES))

    def validate(self) -> None:
        """Raise ``ValueError`` for settings that cannot be simulated."""
        check_resolution(self.resolution)
        for name in ("runs", "modules", "particles", "batch_runs", "cells_per_module"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
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


def dataset_id(config: SimConfig) -> str:
    """Stable identifier of the data a config produces (independent of the run count)."""
    data = asdict(config)
    for key in ("runs", "batch_runs"):
        data.pop(key)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


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


def _relativistic(energy_eV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(gamma, beta, p c in eV) of protons of total energy ``energy_eV``."""
    gamma = energy_eV / PROTON_MASS_EV
    beta = (1.0 - gamma.pow(-2)).sqrt()
    return gamma, beta, (energy_eV.square() - PROTON_MASS_EV**2).sqrt()


def rf_gap_kick(
    particles: torch.Tensor,
    energy_eV: torch.Tensor,
    voltage_V: torch.Tensor,
    phase_deg: torch.Tensor,
    wavelength_m: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Thin RF gap acting on cheetah particle coordinates (Wangler 2008, eqs. 7.x).

    ``particles``: (B, N, 7) as (x, px, y, py, tau, p, 1) with tau = beta c dt (m, positive =
    late) and p = dE / (p0 c); ``energy_eV``: (B,) reference total energy; ``voltage_V`` and
    ``phase_deg``: (B,) effective gap voltage E0 T L and synchronous phase (0 = crest, negative
    = before crest).  Returns the new particles and reference energies.
    """
    _gamma0, beta0, p0c = _relativistic(energy_eV)
    phi_s = torch.deg2rad(phase_deg)
    phi = phi_s[:, None] + 2.0 * math.pi * particles[..., 4] / (beta0[:, None] * wavelength_m)
    gain = voltage_V[:, None] * torch.cos(phi)
    gain_s = voltage_V * torch.cos(phi_s)
    energy1 = energy_eV + gain_s
    gamma1, beta1, p1c = _relativistic(energy1)
    out = particles.clone()
    out[..., 5] = (particles[..., 5] * p0c[:, None] + gain - gain_s[:, None]) / p1c[:, None]
    defocus = (-math.pi * voltage_V[:, None] * torch.sin(phi)
               / (PROTON_MASS_EV * (beta1 * gamma1)[:, None].pow(3) * wavelength_m))
    damping = (p0c / p1c)[:, None]
    out[..., 1] = particles[..., 1] * damping + defocus * particles[..., 0]
    out[..., 3] = particles[..., 3] * damping + defocus * particles[..., 2]
    out[..., 4] = particles[..., 4] * (beta1 / beta0)[:, None]
    return out, energy1


def histogram_projections(
    coords: torch.Tensor, half_widths: Sequence[float], resolution: int, blur_px: float = 0.0
) -> torch.Tensor:
    """Cloud-in-cell histograms of the 15 projections.

    ``coords``: (B, N, 6) in COORDINATES order and units; returns (B, 15, H, W) float32 with
    the fraction of particles per pixel (rows = second coordinate, columns = first).
    """
    b, n, _ = coords.shape
    h = resolution
    half = torch.as_tensor(half_widths, dtype=coords.dtype)
    u = (coords / half + 1.0) * (h / 2.0) - 0.5  # pixel-centre coordinates
    images = torch.zeros(b, len(PROJECTIONS), h * h, dtype=coords.dtype)
    for c, (i, j) in enumerate(PROJECTIONS):
        ui, uj = u[..., i], u[..., j]
        i0, j0 = ui.floor(), uj.floor()
        fi, fj = ui - i0, uj - j0
        for di, wi in ((0, 1 - fi), (1, fi)):
            for dj, wj in ((0, 1 - fj), (1, fj)):
                col, row = i0 + di, j0 + dj
                ok = (col >= 0) & (col < h) & (row >= 0) & (row < h)
                flat = (row.clamp(0, h - 1) * h + col.clamp(0, h - 1)).long()
                images[:, c].scatter_add_(1, flat, torch.where(ok, wi * wj, 0.0))
    images = images.view(b, len(PROJECTIONS), h, h) / n
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
    """Cheetah coordinates (B, N, 7) -> (B, N, 6) in COORDINATES order and units."""
    _, beta, pc = _relativistic(energy_eV)
    kinetic = energy_eV - PROTON_MASS_EV
    x = particles[..., 0] * 1e3
    xp = particles[..., 1] * 1e3
    y = particles[..., 2] * 1e3
    yp = particles[..., 3] * 1e3
    phi = particles[..., 4] / (beta[:, None] * wavelength_m) * 360.0
    dw = particles[..., 5] * (pc / kinetic)[:, None] * 100.0
    return torch.stack([x, y, phi, xp, yp, dw], dim=-1)


def _initial_particles(config: SimConfig, settings: np.ndarray, run_index: int,
                       wavelength_m: float) -> torch.Tensor:
    """Gaussian initial beam (N, 7) in cheetah coordinates for one run."""
    m = config.modules
    emit_x, emit_y, mismatch = settings[2 * m + 1], settings[2 * m + 2], settings[2 * m + 3]
    gen = torch.Generator().manual_seed(int(config.seed) * 100_003 + int(run_index))
    z = torch.randn(config.particles, 6, generator=gen, dtype=torch.float64)
    _, beta, pc = _relativistic(torch.tensor(config.initial_energy_MeV * 1e6 + PROTON_MASS_EV,
                                             dtype=torch.float64))
    kinetic = config.initial_energy_MeV * 1e6
    sx = config.sigma_x_mm * 1e-3 * math.sqrt(emit_x * mismatch)
    sxp = config.sigma_xp_mrad * 1e-3 * math.sqrt(emit_x / mismatch)
    sy = config.sigma_x_mm * 1e-3 * math.sqrt(emit_y / mismatch)
    syp = config.sigma_xp_mrad * 1e-3 * math.sqrt(emit_y * mismatch)
    stau = config.sigma_phi_deg / 360.0 * float(beta) * wavelength_m
    sp = config.sigma_dW_percent / 100.0 * kinetic / float(pc)
    scale = torch.tensor([sx, sxp, sy, syp, stau, sp], dtype=torch.float64)
    parts = torch.ones(config.particles, 7, dtype=torch.float64)
    parts[:, :6] = z * scale
    return parts.float()


def simulate_runs(
    config: SimConfig, settings: np.ndarray, run_indices: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Track a batch of runs with explicit settings.

    ``settings``: (B, 2M+5) as from :func:`draw_settings`; ``run_indices``: (B,) used to seed
    each run's initial particles.  Returns ``images`` (B, M, 15, H, H) float32 and
    ``energy_MeV`` (B, M) kinetic reference energy at each module exit.
    """
    import cheetah

    settings = np.asarray(settings, dtype=np.float64)
    m = config.modules
    if settings.ndim != 2 or settings.shape[1] != 2 * m + 5:
        raise ValueError(f"settings must have shape (B, {2 * m + 5}), got {settings.shape}")
    b = settings.shape[0]
    lam = SPEED_OF_LIGHT / (config.rf_frequency_MHz * 1e6)
    proton = cheetah.Species("proton")
    parts = torch.stack([_initial_particles(config, settings[k], run_indices[k], lam)
                         for k in range(b)])
    energy = torch.full((b,), config.initial_energy_MeV * 1e6 + PROTON_MASS_EV,
                        dtype=torch.float32)
    charge = torch.as_tensor(settings[:, 2 * m + 4] * 1e-12, dtype=torch.float32)
    charges = (charge[:, None] / config.particles).expand(b, config.particles).contiguous()
    k1 = torch.as_tensor(config.quad_k1_per_m2 * settings[:, 2 * m], dtype=torch.float32)

    def t(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=torch.float32)

    quad_f = cheetah.Segment([cheetah.Quadrupole(length=t(config.quad_length_m), k1=k1),
                              cheetah.Drift(length=t(config.drift_length_m))])
    quad_d = cheetah.Segment([cheetah.Drift(length=t(config.drift_length_m)),
                              cheetah.Quadrupole(length=t(config.quad_length_m), k1=-k1),
                              cheetah.Drift(length=t(config.drift_length_m))])
    drift = cheetah.Drift(length=t(config.drift_length_m))
    cell_length = 2 * config.quad_length_m + 4 * config.drift_length_m
    kicks = max(1, min(config.space_charge_kicks_per_module, config.cells_per_module))
    kick_every = config.cells_per_module / kicks
    sc = cheetah.SpaceChargeKick(effect_length=t(cell_length * kick_every),
                                 grid_shape=(config.space_charge_grid,) * 3)
    design_voltage = config.gain_per_gap_MeV * 1e6 / math.cos(math.radians(config.design_phase_deg))
    half = [config.ranges[c] for c in COORDINATES]
    images = np.zeros((b, m, len(PROJECTIONS), config.resolution, config.resolution), np.float32)
    energies = np.zeros((b, m), np.float64)

    def beam_of(p: torch.Tensor, e: torch.Tensor) -> cheetah.ParticleBeam:
        return cheetah.ParticleBeam(particles=p, energy=e, particle_charges=charges,
                                    species=proton)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in range(m):
            volt = torch.as_tensor(design_voltage * settings[:, module], dtype=torch.float32)
            phase = torch.as_tensor(config.design_phase_deg + settings[:, m + module],
                                    dtype=torch.float32)
            for cell in range(config.cells_per_module):
                beam = quad_f.track(beam_of(parts, energy))
                if config.space_charge and cell % kick_every < 1:
                    beam = sc.track(beam)
                parts, energy = rf_gap_kick(beam.particles, beam.energy, volt, phase, lam)
                beam = quad_d.track(beam_of(parts, energy))
                parts, energy = rf_gap_kick(beam.particles, beam.energy, volt, phase, lam)
                beam = drift.track(beam_of(parts, energy))
                parts, energy = beam.particles, beam.energy
            coords = _to_physical(parts.double(), energy.double(), lam)
            images[:, module] = histogram_projections(
                coords, half, config.resolution, config.blur_px).numpy()
            energies[:, module] = (energy.double() - PROTON_MASS_EV).numpy() / 1e6
    if not np.isfinite(images).all():
        raise ValueError("simulation produced non-finite images; check the lattice settings")
    return images, energies


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
    with H5Appender(output, PHASE_SPACE_SCHEMA, attrs=attrs, chunk_rows=1) as out:
        bar = progress(total=stop - start, desc="simulate", disable=None if progress_bar else True)
        for lo in range(start, stop, config.batch_runs):
            hi = min(stop, lo + config.batch_runs)
            idx = list(range(lo, hi))
            settings = np.stack([draw_settings(config, i) for i in idx])
            images, energies = simulate_runs(config, settings, idx)
            out.append({"images": images, "settings": settings.astype(np.float32),
                        "energy_MeV": energies.astype(np.float32),
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
        "image_unit": "fraction of macroparticles per pixel",
        "sim_config": asdict(config),
        "dataset_id": dataset_id(config),
    }


def merge_shards(inputs: Sequence[str | Path], output: str | Path) -> int:
    """Concatenate shard files (checked to share modules, resolution and dataset id)."""
    from physml_core.errors import DataFormatError
    from physml_core.hdf5 import H5Reader

    if not inputs:
        raise ValueError("merge needs at least one input file")
    ids, offsets = set(), []
    for path in inputs:
        with H5Reader(path, PHASE_SPACE_SCHEMA) as reader:
            attrs = reader.attrs
            ids.add((attrs.get("dataset_id"), attrs.get("modules"), attrs.get("resolution")))
            offsets.append(int(attrs.get("run_offset", 0)))
    if len(ids) > 1:
        raise DataFormatError(f"shards come from different simulations: {sorted(map(str, ids))}")
    order = [p for _, p in sorted(zip(offsets, inputs, strict=True), key=lambda t: t[0])]
    return concat_h5(order, output, PHASE_SPACE_SCHEMA, batch_size=8, attrs={"run_offset": 0})
