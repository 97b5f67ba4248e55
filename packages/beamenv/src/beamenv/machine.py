"""CERN PS Booster (PSB) parameters and machine programs (momentum and RF voltages).

Units are in the names: ``_m`` metres, ``_s`` seconds, ``_T`` tesla, ``_V`` volts,
``_eV`` electron-volts (energies), ``_eV_c`` eV/c (momenta).

Sources (public): PSB radius 25 m (circumference 157.08 m), bending radius 8.239 m, transition
gamma about 4.1; a real cycle ramps B from 0.232 T to 1.135 T between C275 and C805 ms
(160 MeV -> 2 GeV kinetic, about 802,000 turns, revolution frequency 0.99 -> 1.81 MHz, at most
about 4.8 keV gained per turn); V1 8.6-11.2 kV on the ramp, V2/V1 about 0.75 for ISOLDE/TOF beams.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import BeamEnvError, ProgramFileError

__all__ = [
    "C_LIGHT_M_S",
    "PROTON_MASS_EV",
    "Z0_OHM",
    "CyclePrograms",
    "PSBRing",
    "default_cycle",
    "ek_from_momentum",
    "load_program",
    "momentum_from_ek",
]

C_LIGHT_M_S = 299_792_458.0
PROTON_MASS_EV = 938.27208816e6
Z0_OHM = 376.730313668


def momentum_from_ek(ek_eV: np.ndarray | float) -> np.ndarray:
    """Proton momentum (eV/c) from kinetic energy (eV)."""
    energy = np.asarray(ek_eV, dtype=float) + PROTON_MASS_EV
    return np.sqrt(energy**2 - PROTON_MASS_EV**2)


def ek_from_momentum(p_eV_c: np.ndarray | float) -> np.ndarray:
    """Proton kinetic energy (eV) from momentum (eV/c)."""
    p = np.asarray(p_eV_c, dtype=float)
    return np.sqrt(p**2 + PROTON_MASS_EV**2) - PROTON_MASS_EV


@dataclasses.dataclass(frozen=True)
class PSBRing:
    """Ring parameters of the PS Booster (one of its four rings).

    Attributes:
        radius_m: mean machine radius (25 m, circumference 157.08 m).
        bending_radius_m: dipole bending radius (8.239 m).
        gamma_t: transition gamma (4.1; the LSTM-TD3 fork used 4.4 from an old example).
        intensity: protons per bunch (up to about 1e13).
    """

    radius_m: float = 25.0
    bending_radius_m: float = 8.239
    gamma_t: float = 4.1
    intensity: float = 8e12

    def __post_init__(self) -> None:
        for name in ("radius_m", "bending_radius_m", "gamma_t"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise BeamEnvError(f"{name} must be a positive finite number, got {value!r}")
        if not (math.isfinite(self.intensity) and 0 <= self.intensity <= 5e13):
            raise BeamEnvError(f"intensity must be in [0, 5e13] protons, got {self.intensity!r}")

    @property
    def circumference_m(self) -> float:
        return 2.0 * math.pi * self.radius_m

    @property
    def alpha_0(self) -> float:
        """First-order momentum compaction factor, 1 / gamma_t**2."""
        return 1.0 / self.gamma_t**2

    def momentum_from_field(self, b_T: np.ndarray | float) -> np.ndarray:
        """Proton momentum (eV/c) for dipole field ``b_T``: p = c B rho."""
        return C_LIGHT_M_S * np.asarray(b_T, dtype=float) * self.bending_radius_m

    def revolution_period_s(self, p_eV_c: np.ndarray | float) -> np.ndarray:
        p = np.asarray(p_eV_c, dtype=float)
        beta = p / np.sqrt(p**2 + PROTON_MASS_EV**2)
        return self.circumference_m / (beta * C_LIGHT_M_S)

    def slippage(self, p_eV_c: np.ndarray | float) -> np.ndarray:
        """Phase slippage factor eta = 1/gamma_t**2 - 1/gamma**2 (negative below transition)."""
        p = np.asarray(p_eV_c, dtype=float)
        gamma = np.sqrt(p**2 + PROTON_MASS_EV**2) / PROTON_MASS_EV
        return self.alpha_0 - 1.0 / gamma**2

    def summary(self) -> dict[str, float]:
        return {"radius_m": self.radius_m, "circumference_m": self.circumference_m,
                "bending_radius_m": self.bending_radius_m, "gamma_t": self.gamma_t,
                "alpha_0": self.alpha_0, "intensity_protons": self.intensity}


@dataclasses.dataclass(frozen=True)
class CyclePrograms:
    """Machine programs along the cycle, sampled at ``time_s`` (shape ``(K,)``, increasing).

    Attributes:
        time_s: program times from the start of the ramp, shape (K,).
        momentum_eV_c: proton momentum, shape (K,).
        v1_V: fundamental (h = 1) RF voltage amplitude, shape (K,).
        v2_V: second-harmonic (h = 2) RF voltage amplitude, shape (K,).
    """

    time_s: np.ndarray
    momentum_eV_c: np.ndarray
    v1_V: np.ndarray
    v2_V: np.ndarray

    def __post_init__(self) -> None:
        arrays = [np.asarray(a, dtype=float) for a in
                  (self.time_s, self.momentum_eV_c, self.v1_V, self.v2_V)]
        for name, arr in zip(("time_s", "momentum_eV_c", "v1_V", "v2_V"), arrays, strict=True):
            if arr.ndim != 1 or arr.size < 2:
                raise ProgramFileError(f"program {name} must be 1-D with >= 2 samples")
            if arr.shape != arrays[0].shape:
                raise ProgramFileError("program arrays must all have the same length")
            if not np.all(np.isfinite(arr)):
                raise ProgramFileError(f"program {name} has non-finite values")
            object.__setattr__(self, name, arr)
        if np.any(np.diff(self.time_s) <= 0):
            raise ProgramFileError("program time_s must be strictly increasing")
        if np.any(self.momentum_eV_c <= 0):
            raise ProgramFileError("program momentum must be positive")
        if np.any(self.v1_V <= 0) or np.any(self.v2_V < 0):
            raise ProgramFileError("program needs V1 > 0 and V2 >= 0 volts")

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0])

    def momentum_at(self, t_s: np.ndarray | float) -> np.ndarray:
        return np.interp(t_s, self.time_s, self.momentum_eV_c)

    def voltages_at(self, t_s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(V1, V2) in volts at times ``t_s``."""
        return np.interp(t_s, self.time_s, self.v1_V), np.interp(t_s, self.time_s, self.v2_V)

    def number_of_turns(self, ring: PSBRing) -> int:
        """Turns in the whole program (integral of the revolution frequency)."""
        t = np.linspace(self.time_s[0], self.time_s[-1], 20001)
        f_rev = 1.0 / ring.revolution_period_s(self.momentum_at(t))
        return int(np.trapezoid(f_rev, t))

    def max_energy_gain_per_turn_eV(self, ring: PSBRing) -> float:
        """Largest synchronous energy gain per turn (eV) along the program."""
        t = np.linspace(self.time_s[0], self.time_s[-1], 20001)
        p = self.momentum_at(t)
        energy = np.sqrt(p**2 + PROTON_MASS_EV**2)
        de_dt = np.gradient(energy, t)
        return float(np.max(de_dt * ring.revolution_period_s(p)))


def default_cycle(ring: PSBRing | None = None, *, v2_ratio: float = 0.75,
                  v1_flat_V: float = 10e3, v1_injection_V: float = 8e3,
                  b_start_T: float = 0.232, b_end_T: float = 1.135,
                  duration_s: float = 0.530, edge_s: float = 0.200,
                  v2_off_s: float | None = 0.015) -> CyclePrograms:
    """A realistic PSB acceleration ramp (160 MeV -> 2 GeV kinetic in 530 ms).

    dB/dt rises and falls with raised-cosine edges of ``edge_s`` seconds (no kink in the energy
    gain), giving at most about 3.5 keV per turn.  V1 rises from ``v1_injection_V`` to
    ``v1_flat_V`` in the first 30 ms; V2 = ``v2_ratio`` * V1 and, as in the real machine, is
    switched off linearly over the last ``v2_off_s`` seconds before extraction (``None``: kept).
    """
    ring = ring or PSBRing()
    if not 0.0 <= v2_ratio <= 2.0:
        raise BeamEnvError(f"v2_ratio must be in [0, 2], got {v2_ratio!r}")
    if not 0.0 < 2 * edge_s <= duration_s:
        raise BeamEnvError("edge_s must be positive and at most half of duration_s")
    if not 0 < b_start_T < b_end_T:
        raise BeamEnvError("need 0 < b_start_T < b_end_T")
    t = np.linspace(0.0, duration_s, 2001)
    shape = np.ones_like(t)
    rise = t < edge_s
    fall = t > duration_s - edge_s
    shape[rise] = 0.5 * (1 - np.cos(np.pi * t[rise] / edge_s))
    shape[fall] = 0.5 * (1 - np.cos(np.pi * (duration_s - t[fall]) / edge_s))
    b = np.concatenate([[0.0], np.cumsum(0.5 * (shape[1:] + shape[:-1]) * np.diff(t))])
    b = b_start_T + (b_end_T - b_start_T) * b / b[-1]
    v1 = np.where(t < 0.030, v1_injection_V + (v1_flat_V - v1_injection_V) * t / 0.030,
                  v1_flat_V)
    v2 = v2_ratio * v1
    if v2_off_s:
        v2 = v2 * np.clip((duration_s - t) / v2_off_s, 0.0, 1.0)
    return CyclePrograms(t, ring.momentum_from_field(b), v1, v2)


_MOMENTUM_COLUMNS = ("momentum_eV_c", "B_T", "Ek_eV")


def _program_from_columns(cols: Mapping[str, np.ndarray], ring: PSBRing, v2_ratio: float,
                          source: str) -> CyclePrograms:
    if "time_s" not in cols:
        raise ProgramFileError(f"{source}: missing column 'time_s'")
    time_s = np.asarray(cols["time_s"], dtype=float)
    found = [c for c in _MOMENTUM_COLUMNS if c in cols]
    if len(found) != 1:
        raise ProgramFileError(f"{source}: need exactly one of the columns "
                               f"{', '.join(_MOMENTUM_COLUMNS)}; found {found or 'none'}")
    values = np.asarray(cols[found[0]], dtype=float)
    if found[0] == "B_T":
        momentum = ring.momentum_from_field(values)
    elif found[0] == "Ek_eV":
        momentum = momentum_from_ek(values)
    else:
        momentum = values
    default = default_cycle(ring, v2_ratio=v2_ratio)
    t_rel = (time_s - time_s[0]) / max(time_s[-1] - time_s[0], 1e-12) * default.duration_s
    v1 = np.asarray(cols["v1_V"], float) if "v1_V" in cols else np.interp(
        t_rel, default.time_s, default.v1_V)
    v2 = np.asarray(cols["v2_V"], float) if "v2_V" in cols else v2_ratio * v1
    try:
        return CyclePrograms(time_s - time_s[0], momentum, v1, v2)
    except ProgramFileError as exc:
        raise ProgramFileError(f"{source}: {exc}") from None


def load_program(path: str | Path, ring: PSBRing | None = None, *,
                 v2_ratio: float = 0.75) -> CyclePrograms:
    """Load machine programs from a CSV (header row) or ``.npz`` file.

    Columns/keys: ``time_s`` (required), exactly one of ``momentum_eV_c``, ``B_T`` or ``Ek_eV``,
    and optionally ``v1_V`` and ``v2_V`` (else V1 follows the default program and
    V2 = ``v2_ratio`` * V1).  Time may start anywhere; it is shifted to start at 0.

    Raises:
        ProgramFileError: missing file, unknown format, missing/invalid columns.
    """
    ring = ring or PSBRing()
    path = Path(path)
    if not path.is_file():
        raise ProgramFileError(f"program file not found: {path}")
    cols: dict[str, np.ndarray] = {}
    if path.suffix == ".npz":
        try:
            with np.load(path) as data:
                cols = {k: np.asarray(data[k]) for k in data.files}
        except (OSError, ValueError) as exc:
            raise ProgramFileError(f"{path}: not a readable .npz file ({exc})") from None
    else:
        try:
            with open(path, newline="") as fh:
                rows = [r for r in csv.reader(fh) if r and not r[0].lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as exc:
            raise ProgramFileError(f"{path}: not a readable CSV file ({exc})") from None
        if len(rows) < 3:
            raise ProgramFileError(f"{path}: need a header row and at least 2 data rows")
        header = [h.strip() for h in rows[0]]
        try:
            data = np.array([[float(x) for x in r] for r in rows[1:]], dtype=float)
        except ValueError as exc:
            raise ProgramFileError(f"{path}: non-numeric value ({exc})") from None
        if data.ndim != 2 or data.shape[1] != len(header):
            raise ProgramFileError(f"{path}: every row needs {len(header)} values")
        cols = {name: data[:, i] for i, name in enumerate(header)}
    return _program_from_columns(cols, ring, v2_ratio, str(path))
