"""Double-harmonic RF bucket: potential well, separatrix, action, and adiabatic beam transfer.

Pure NumPy, in BLonD's coordinates: ``dt`` (s, arrival time within the revolution period, the
h = 1 bucket spans about [0, T_rev]) and ``dE`` (eV, energy offset from the synchronous particle).
Per turn BLonD applies

    dE <- dE + V1 sin(w dt + phi1) + V2 sin(2 w dt + phi2) - dE_s,    w = 2 pi / T_rev
    dt <- dt + T_rev * eta * dE / (beta^2 E)

(voltages in volts, unit charge, ``dE_s`` the synchronous energy gain per turn).  Its Hamiltonian
per turn, oriented so that the bucket is a well, is

    H(dt, dE) = a dE^2 + U(dt),  a = |eta| T_rev / (2 beta^2 E),  U = -sign(eta) * int F d(dt)

with F the energy kick above.  The area enclosed by the orbit of "energy" H (the action times
2 pi, in eV s) is an adiabatic invariant: when the machine changes slowly (the real ramp takes
800,000 turns), every particle keeps its area.  :func:`transfer_beam` uses this to carry a beam
from one machine state to a later one in a single map, which is how the environments compress the
cycle into a few tracked stretches.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict

import numpy as np

from .machine import PROTON_MASS_EV, PSBRing

__all__ = ["BUCKET_CACHE_SIZE", "Bucket", "RFState", "bunching_factor", "bunching_factors",
           "cached_bucket", "carry_beam", "line_densities", "line_density", "transfer_beam"]

#: Buckets (with their area tables) kept per process, keyed by the machine state.
BUCKET_CACHE_SIZE = 256
_BUCKETS: OrderedDict[RFState, Bucket] = OrderedDict()
#: Bins of the sort key of the transfer (int16 keys are radix-sorted).
_SORT_BINS = 4095


@dataclasses.dataclass(frozen=True)
class RFState:
    """Machine state on one turn (two RF systems, h = 1 and h = 2, proton beam).

    Attributes:
        ring: the ring.
        momentum_eV_c: synchronous momentum.
        energy_gain_eV: synchronous energy gain per turn (eV; 0 without acceleration).
        v1_V, v2_V: RF voltage amplitudes (V).
        phi1_rad, phi2_rad: RF phases in BLonD's convention (phi1 = pi below transition).
    """

    ring: PSBRing
    momentum_eV_c: float
    energy_gain_eV: float
    v1_V: float
    v2_V: float
    phi1_rad: float = np.pi
    phi2_rad: float = np.pi

    @functools.cached_property
    def energy_eV(self) -> float:
        return float(np.hypot(self.momentum_eV_c, PROTON_MASS_EV))

    @functools.cached_property
    def beta(self) -> float:
        return self.momentum_eV_c / self.energy_eV

    @functools.cached_property
    def eta(self) -> float:
        return float(self.ring.slippage(self.momentum_eV_c))

    @functools.cached_property
    def t_rev_s(self) -> float:
        return float(self.ring.revolution_period_s(self.momentum_eV_c))

    def kick_eV(self, dt_s: np.ndarray) -> np.ndarray:
        """Energy kick per turn (eV) at arrival times ``dt_s`` (any shape)."""
        w = 2.0 * np.pi / self.t_rev_s
        return (self.v1_V * np.sin(w * dt_s + self.phi1_rad)
                + self.v2_V * np.sin(2.0 * w * dt_s + self.phi2_rad) - self.energy_gain_eV)

    def synchrotron_tune_linear(self) -> float:
        """Small-amplitude synchrotron tune of the h = 1 system alone (V2 ignored).

        Q_s = sqrt(h V1 |eta cos phi_s| / (2 pi beta^2 E)) with sin phi_s = dE_s / V1.
        """
        sin_phis = np.clip(self.energy_gain_eV / self.v1_V, -1.0, 1.0)
        cos_phis = np.sqrt(1.0 - sin_phis**2)
        return float(np.sqrt(self.v1_V * abs(self.eta) * cos_phis
                             / (2.0 * np.pi * self.beta**2 * self.energy_eV)))


class Bucket:
    """Potential well and separatrix of an :class:`RFState`, with action tables.

    The well is sampled on ``n_points`` times spanning [-T_rev/2, 3 T_rev/2]; the bucket is the
    largest well (deepest below its lower barrier).  ``levels`` (shape ``(n_levels,)``) are H
    values from the bottom to the separatrix and ``area`` (eV s, same shape) the phase-space area
    enclosed at each level.
    """

    def __init__(self, state: RFState, n_points: int = 1200, n_levels: int = 96) -> None:
        if n_points < 3 or n_levels < 2:
            raise ValueError(f"Bucket needs n_points >= 3 and n_levels >= 2, got {n_points} "
                             f"and {n_levels}")
        self.state = state
        t_rev = state.t_rev_s
        eta = state.eta
        self.a = abs(eta) * t_rev / (2.0 * state.beta**2 * state.energy_eV)
        t = _grid(-0.5 * t_rev, 1.5 * t_rev, n_points)
        dt_step = t[1] - t[0]
        self._sign = -float(np.sign(eta))
        self._t0 = float(t[0])
        # constants of the closed-form potential, evaluated once per bucket (not per call)
        self._w = 2.0 * np.pi / t_rev
        self._c1 = -state.v1_V / self._w
        self._c2 = state.v2_V / (2.0 * self._w)
        self._w0 = self._antiderivative(np.array(self._t0))
        u = self._u_exact(t)  # the integral of the kick, in closed form
        self.t = t
        self.dt_step = dt_step
        self.u = u
        self._cum_table: np.ndarray | None = None
        self._cells_table: tuple[np.ndarray, np.ndarray] | None = None
        minima = np.flatnonzero((u[1:-1] < u[:-2]) & (u[1:-1] <= u[2:])) + 1
        # lower barrier of the well at i: min(max u[:i+1], max u[i:]) (running maxima)
        barrier = np.minimum(np.maximum.accumulate(u), np.maximum.accumulate(u[::-1])[::-1])
        best = None
        for i in minima.tolist():
            h_sep = barrier[i]
            depth = h_sep - u[i]
            key = (depth, -abs(t[i] - 0.5 * t_rev))
            if depth > 0 and (best is None or key > best[0]):
                best = (key, i, h_sep)
        self.valid = best is not None
        if best is None:  # no bucket (e.g. energy gain above the RF voltage)
            self.i_min = int(np.argmin(np.abs(t - 0.5 * t_rev)))
            self.h_sep = float(u[self.i_min])
            self.left = self.right = self.i_min
            self.levels = np.array([self.h_sep, self.h_sep + 1e-30])
            self.area = np.zeros(2)
            self._cum_table = np.zeros((2, 1), dtype=np.int32)
            self._count = np.zeros(2, dtype=np.int64)
            self.single = False
            return
        _, i_min, h_sep = best
        self.i_min = int(i_min)
        self.h_sep = float(h_sep)
        above_left = np.flatnonzero(u[:i_min] >= h_sep)
        above_right = np.flatnonzero(u[i_min:] >= h_sep)
        self.left = int(above_left[-1]) if above_left.size else 0
        self.right = int(i_min + above_right[0]) if above_right.size else n_points - 1
        u_min = float(u[self.left: self.right + 1].min())
        self.levels = u_min + (h_sep - u_min) * _level_fractions(n_levels)
        uw = u[self.left: self.right + 1]
        width = uw.size
        # {U < H} on the window, per level, without the (n_levels, width) mask: its size,
        # first and last cell from the sorted potential and its running minima from either end
        # (the same integers as counting the mask levels[:, None] > uw[None, :] row by row)
        count = np.searchsorted(np.sort(uw), self.levels, side="left")
        prefix_min = np.minimum.accumulate(uw)  # non-increasing
        suffix_min = np.minimum.accumulate(uw[::-1])[::-1]  # non-decreasing
        first = np.searchsorted(-prefix_min, -self.levels, side="right")
        last = np.searchsorted(suffix_min, self.levels, side="left") - 1
        empty = count == 0
        self._count = count  # cells of {U < H} per level, shape (n_levels,)
        first = np.where(empty, 0, first)
        last = np.where(empty, width - 1, last)
        # single well: {U < H} is one interval [lo(H), hi(H)] at every level (the fast map)
        self.single = bool(np.all(empty | (count == last - first + 1)))
        # area at each level: 2 sum sqrt(max(H - U, 0) / a) dt over the window (in place)
        root = self.levels[:, None] - uw[None, :]
        np.maximum(root, 0.0, out=root)
        root /= self.a
        np.sqrt(root, out=root)
        self.area = 2.0 * np.sum(root, axis=1) * dt_step
        tw = t[self.left: self.right + 1]
        centre = float(t[self.i_min])
        self._lo = np.where(count > 0, tw[first] - 0.5 * dt_step, centre)
        self._hi = np.where(count > 0, tw[last] + 0.5 * dt_step, centre)

    @property
    def _cum(self) -> np.ndarray:
        """Measure of {U < H} left of each window cell, shape (n_levels, window cells), in grid
        cells (int32; built on first use: only the double-well transfer needs it)."""
        if self._cum_table is None:
            uw = self.u[self.left: self.right + 1]
            self._cum_table = np.cumsum(self.levels[:, None] > uw[None, :], axis=1,
                                        dtype=np.int32)
        return self._cum_table

    @property
    def _cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Window cells of {U < H}, level after level: ``(cells, start)``, where
        ``cells[start[r] + i]`` (shape (sum of counts,), int64) is the window column of the
        (i + 1)-th cell of level r (``start`` shape (n_levels,)); the column where row r of
        :attr:`_cum` first reaches i + 1.  Built on first use, kept with the cached bucket."""
        if self._cells_table is None:
            uw = self.u[self.left: self.right + 1]
            cells = np.nonzero(self.levels[:, None] > uw[None, :])[1]
            start = np.concatenate([[0], np.cumsum(self._count)[:-1]]).astype(np.int64)
            self._cells_table = (cells.astype(np.int64), start)
        return self._cells_table

    @property
    def t_left_s(self) -> float:
        return float(self.t[self.left])

    @property
    def t_right_s(self) -> float:
        return float(self.t[self.right])

    @property
    def bucket_area_eVs(self) -> float:
        return float(self.area[-1])

    @property
    def bucket_length_s(self) -> float:
        return float(self.t[self.right] - self.t[self.left])

    @property
    def centre_s(self) -> float:
        return float(self.t[self.i_min])

    def _antiderivative(self, x: np.ndarray) -> np.ndarray:
        """W(x), the antiderivative of the kick (eV s per turn units), as a new array."""
        st = self.state
        return (self._c1 * np.cos(self._w * x + st.phi1_rad)
                - self._c2 * np.cos(2.0 * self._w * x + st.phi2_rad)
                - st.energy_gain_eV * x)

    def _u_exact(self, dt_s: np.ndarray) -> np.ndarray:
        """U(t) = -sign(eta) (W(t) - W(t0)), W the antiderivative of the kick (closed form).

        The same operations as :meth:`_antiderivative` in the same order, in two work arrays
        (bit-identical to ``sign * (W(t) - W(t0))``; per-particle calls dominate the transfer).
        """
        x = np.asarray(dt_s, dtype=float)
        if x.ndim == 0:
            return self._u_exact(x.reshape(1))[0]
        st = self.state
        work = self._w * x
        out = work + st.phi1_rad
        np.cos(out, out=out)
        np.multiply(self._c1, out, out=out)
        work *= 2.0  # (2 w) x == 2 (w x) exactly
        work += st.phi2_rad
        np.cos(work, out=work)
        np.multiply(self._c2, work, out=work)
        out -= work
        np.multiply(st.energy_gain_eV, x, out=work)
        out -= work
        out -= self._w0
        out *= self._sign
        return out

    def potential(self, dt_s: np.ndarray) -> np.ndarray:
        """Potential well U (eV s per turn units, as ``u``) at times ``dt_s`` (closed form:
        faster than interpolating the table for unsorted particles, and exact)."""
        return self._u_exact(dt_s)

    def hamiltonian(self, dt_s: np.ndarray, de_eV: np.ndarray) -> np.ndarray:
        """H = a dE^2 + U(dt) (eV s per turn units), shape of the broadcast inputs."""
        de = np.asarray(de_eV)
        kinetic = self.a * (de * de)
        u = self.potential(dt_s)
        if isinstance(u, np.ndarray) and np.shape(kinetic) == u.shape:
            return np.add(kinetic, u, out=u)
        return kinetic + u

    def inside(self, dt_s: np.ndarray, de_eV: np.ndarray, h: np.ndarray | None = None
               ) -> np.ndarray:
        """Boolean mask of particles inside the separatrix (``h``: their Hamiltonian values,
        if already computed)."""
        dt_s = np.asarray(dt_s)
        if h is None:
            h = self.hamiltonian(dt_s, de_eV)
        return (dt_s > self.t_left_s) & (dt_s < self.t_right_s) & (h < self.h_sep)

    def separatrix(self, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
        """(dt_s, dE_eV) of the upper separatrix branch, shape (n,) each."""
        tt = np.linspace(self.t_left_s, self.t_right_s, n)
        de = np.sqrt(np.clip(self.h_sep - self.potential(tt), 0.0, None) / self.a)
        return tt, de

    def area_of(self, h: np.ndarray) -> np.ndarray:
        """Area (eV s) enclosed at Hamiltonian values ``h``."""
        return np.interp(h, self.levels, self.area)

    def level_of_area(self, area: np.ndarray) -> np.ndarray:
        return np.interp(area, self.area, self.levels)

    def emittance_eVs(self, dt_s: np.ndarray, de_eV: np.ndarray, fraction: float = 0.9
                      ) -> float:
        """Longitudinal emittance (eV s) of a bunch in this bucket: the phase-space area of the
        smallest orbit of this bucket's Hamiltonian that encloses ``fraction`` of the particles.

        Each particle's enclosed orbit area is its action (times 2 pi), invariant while the
        bucket does not change and adiabatically invariant while it changes slowly.  So for a
        bunch just moved into this bucket (a phase jump) the value is the emittance the bunch
        will have once it has filamented in it; for a bunch matched to this bucket it is the
        smallest possible value (the matched orbits are the highest-density region; up to about
        1 % sampling noise).  Particles
        outside the separatrix count with the full bucket area.  Returns 0 for no particles.
        """
        if np.size(dt_s) == 0:
            return 0.0
        h = self.hamiltonian(dt_s, de_eV)
        return self.emittance_from_h(h, self.inside(dt_s, de_eV, h), fraction)

    def emittance_from_h(self, h: np.ndarray, inside: np.ndarray | None = None,
                         fraction: float = 0.9) -> float:
        """:meth:`emittance_eVs` from Hamiltonian values ``h`` (shape (N,)) and the ``inside``
        mask (shape (N,); None: all inside).

        The area is a non-decreasing function of H (and particles outside count with the full
        bucket area, the area at H = +inf), so the ``fraction`` quantile of the areas is the
        area of the quantile of H: one interpolation, not one per particle.
        """
        if np.size(h) == 0:
            return 0.0
        h = np.asarray(h, dtype=float)
        if inside is not None:
            h = np.where(inside, h, np.inf)
        k = max(min(int(np.ceil(fraction * h.size)) - 1, h.size - 1), 0)
        return float(self.area_of(np.partition(h, k)[k]))

    def emittance_to_fill(self, filling_factor: float) -> float:
        """Emittance (eV s) that fills ``filling_factor`` of the bucket area."""
        return float(filling_factor * self.bucket_area_eVs)


def _grid(start: float, stop: float, n: int) -> np.ndarray:
    """``np.linspace(start, stop, n)`` for n >= 2 and stop > start, the same operations
    (arange x step + start, last point set to stop) without linspace's generic checks."""
    t = np.arange(n, dtype=float)
    t *= (stop - start) / (n - 1)
    t += start
    t[-1] = stop
    return t


_LEVEL_FRACTIONS: dict[int, np.ndarray] = {}


def _level_fractions(n_levels: int) -> np.ndarray:
    """s^2 for s = linspace(0, 1, n_levels), shape (n_levels,): the table levels as fractions
    of the well depth (dense near the bottom); computed once per size, read-only."""
    fractions = _LEVEL_FRACTIONS.get(n_levels)
    if fractions is None:
        fractions = np.linspace(0.0, 1.0, n_levels) ** 2
        fractions.flags.writeable = False
        _LEVEL_FRACTIONS[n_levels] = fractions
    return fractions


def cached_bucket(state: RFState) -> Bucket:
    """``Bucket(state)`` from a process-wide LRU cache keyed by the machine state (the area
    tables cost about 1 ms each; the environments meet the same states in every episode)."""
    bucket = _BUCKETS.get(state)
    if bucket is None:
        bucket = Bucket(state)
        _BUCKETS[state] = bucket
        while len(_BUCKETS) > BUCKET_CACHE_SIZE:
            _BUCKETS.popitem(last=False)
    else:
        _BUCKETS.move_to_end(state)
    return bucket


def transfer_beam(dt_s: np.ndarray, de_eV: np.ndarray, old: Bucket, new: Bucket,
                  h_old: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Carry particles from bucket ``old`` to bucket ``new`` conserving each one's area.

    Each particle keeps its enclosed phase-space area (adiabatic invariant) and its relative
    position along the allowed time range of its orbit, and the sign of dE.  Exact in action for
    single wells (where the allowed range at each level is one interval, interpolated between
    table levels: a few interpolations per particle); for double wells the islands share one
    area table (an approximation) and the position is found in the cumulative cell counts.

    Args:
        dt_s, de_eV: particle coordinates, shape (N,).
        h_old: their Hamiltonian in ``old``, shape (N,), if already computed.

    Returns:
        ``(dt_new, de_new, alive)``, shape (N,) each; ``alive`` is False for particles outside
        the old separatrix or whose area no longer fits into the new bucket (their coordinates
        are left unchanged).
    """
    dt_s = np.asarray(dt_s, dtype=float)
    de_eV = np.asarray(de_eV, dtype=float)
    idx, dt_out, de_out, alive = _carry(dt_s, de_eV, old, new, h_old)
    dt_new = dt_s.copy()
    de_new = de_eV.copy()
    dt_new[idx] = dt_out
    de_new[idx] = de_out
    return dt_new, de_new, alive


def carry_beam(dt_s: np.ndarray, de_eV: np.ndarray, old: Bucket, new: Bucket,
               h_old: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`transfer_beam` keeping only the carried particles, in an unspecified order.

    Every particle is mapped on its own, so the carried particles are those of
    ``transfer_beam`` (``dt_new[alive]``, ``de_new[alive]``) permuted; the order is the one
    the transfer computes in (no scatter back).  Used between the tracked stretches, where
    nothing depends on the particles' order (tracking, binning and emittance are per particle
    or order-free).

    Returns:
        ``(dt_new, de_new, n_lost)``: carried particles, shape (M,) each, and N - M.
    """
    dt_s = np.asarray(dt_s, dtype=float)
    de_eV = np.asarray(de_eV, dtype=float)
    idx, dt_out, de_out, _ = _carry(dt_s, de_eV, old, new, h_old)
    return dt_out, de_out, int(dt_s.size - idx.size)


def _carry(dt_s: np.ndarray, de_eV: np.ndarray, old: Bucket, new: Bucket,
           h_old: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The transfer proper: ``(idx, dt_out, de_out, alive)`` with ``idx`` (shape (M,)) the
    carried particles in the order of computation, their new coordinates (shape (M,) each) and
    the mask ``alive`` (shape (N,))."""
    if h_old is None:
        h_old = old.hamiltonian(dt_s, de_eV)
    alive = old.inside(dt_s, de_eV, h_old)
    if not new.valid:
        alive[:] = False
    idx = np.flatnonzero(alive)
    if idx.size == 0:
        return idx, np.zeros(0), np.zeros(0), alive
    # queries in increasing H make the table interpolations fast; every particle is mapped on
    # its own, so the order only matters for speed: a 12-bit key, radix-sorted, is enough
    key = h_old[idx] - old.levels[0]
    key *= _SORT_BINS / (old.levels[-1] - old.levels[0])
    np.clip(key, 0.0, _SORT_BINS, out=key)
    idx = idx[np.argsort(key.astype(np.int16), kind="stable")]
    h_old = h_old[idx]
    area = old.area_of(h_old)
    fits = area < new.area[-1]
    if not fits.all():
        alive[idx[~fits]] = False
        idx, h_old, area = idx[fits], h_old[fits], area[fits]
    h_new = new.level_of_area(area)
    dt_old = dt_s[idx]
    if old.single and new.single:  # both single wells: map interval to interval
        lo, hi = np.interp(h_old, old.levels, old._lo), np.interp(h_old, old.levels, old._hi)
        frac = np.clip((dt_old - lo) / np.maximum(hi - lo, 1e-30), 0.0, 1.0)
        lo, hi = np.interp(h_new, new.levels, new._lo), np.interp(h_new, new.levels, new._hi)
        dt_out = lo + frac * (hi - lo)
    else:
        dt_out = _double_well_positions(dt_old, h_old, h_new, old, new)
    de_out = new.potential(dt_out)  # then sqrt(max(h_new - U, 0) / a), in place
    np.subtract(h_new, de_out, out=de_out)
    np.maximum(de_out, 0.0, out=de_out)
    de_out /= new.a
    np.sqrt(de_out, out=de_out)
    np.negative(de_out, out=de_out, where=de_eV[idx] < 0)  # the sign of dE is kept
    return idx, dt_out, de_out, alive


def _double_well_positions(dt_old: np.ndarray, h_old: np.ndarray, h_new: np.ndarray,
                           old: Bucket, new: Bucket) -> np.ndarray:
    """New arrival times (s, shape (M,)) of particles at times ``dt_old`` and levels ``h_old``
    in ``old`` moved to levels ``h_new`` in ``new`` (all shape (M,)), where either bucket has
    more than one well at some level: the relative position within {U_old < H_old}, measured
    in the cumulative cell counts, is kept within {U_new < H_new}."""
    # relative position of the particle within {U_old < H} (cumulative measure along dt)
    cum_old = old._cum
    lev_old = np.clip(np.searchsorted(old.levels, h_old), 1, len(old.levels) - 1)
    x_old = (dt_old - old.t[old.left]) / old.dt_step
    pos = np.clip(np.round(x_old).astype(int), 0, cum_old.shape[1] - 1)
    offset = x_old - pos + 0.5  # position within the cell
    frac = np.clip((cum_old[lev_old, pos] - 1.0 + np.clip(offset, 0.0, 1.0))
                   / np.maximum(cum_old[lev_old, -1], 1.0), 0.0, 1.0)
    lev_new = np.clip(np.searchsorted(new.levels, h_new), 1, len(new.levels) - 1)
    t_window = new.t[new.left: new.right + 1]
    width = t_window.size
    n_allowed = new._count[lev_new]
    # the allowed grid cells of each level laid end to end; the particle keeps its fractional
    # position: it lands in allowed cell i0 of its level (a look-up in the bucket's cell table)
    x = frac * n_allowed
    i0 = np.minimum(np.floor(x), np.maximum(n_allowed - 1, 0))
    cells, start = new._cells
    if cells.size:
        col = cells[np.minimum(start[lev_new] + i0.astype(np.int64), cells.size - 1)]
    else:
        col = np.zeros(lev_new.size, dtype=np.int64)
    col = np.clip(col, 0, width - 1)
    dt_out = t_window[col] + (x - i0 - 0.5) * new.dt_step
    empty = n_allowed < 1
    if np.any(empty):  # below the grid resolution: the bottom of the well
        dt_out[empty] = t_window[int(np.argmin(new.u[new.left: new.right + 1]))]
    return dt_out


def line_density(dt_s: np.ndarray, t_rev_s: float, n_bins: int) -> np.ndarray:
    """Histogram of arrival times ``dt_s`` (shape (N,)) over one revolution period [0, T_rev),
    shape (n_bins,); entries outside the period (or not finite) are dropped."""
    return line_densities(np.asarray(dt_s, dtype=float)[None, :], t_rev_s, n_bins)[0]


def line_densities(dt_s: np.ndarray, t_rev_s: float, n_bins: int) -> np.ndarray:
    """:func:`line_density` of each row of ``dt_s`` (shape (n, N)), shape (n, n_bins), in one
    pass."""
    x = np.asarray(dt_s, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"dt_s must have shape (n, N), got {x.shape}")
    n_rows = x.shape[0]
    x = x * (n_bins / t_rev_s)
    # outside [0, n_bins) (or not finite): bin n_bins of the row, dropped; inside, truncation
    # is the floor
    idx = np.where((x >= 0) & (x < n_bins), x, float(n_bins)).astype(np.intp)
    idx += (np.arange(n_rows, dtype=np.intp) * (n_bins + 1))[:, None]
    counts = np.bincount(idx.ravel(), minlength=n_rows * (n_bins + 1))
    return counts.reshape(n_rows, n_bins + 1)[:, :n_bins].astype(float)


def bunching_factor(counts: np.ndarray) -> float:
    """Bunching factor B_f = mean / peak line density over the RF period (h = 1).

    ``counts`` (shape (n_bins,)) spans one revolution period; the peak is taken after a
    [1, 2, 1] / 4 smoothing to limit macroparticle noise.  A flat bunch filling the whole period
    has B_f = 1; shorter or more peaked bunches have smaller values.
    """
    return float(bunching_factors(np.asarray(counts, dtype=float)[None, :])[0])


def bunching_factors(profiles: np.ndarray) -> np.ndarray:
    """:func:`bunching_factor` of each row of ``profiles`` (shape (n, n_bins)), shape (n,),
    in one pass; 0 for an empty row."""
    profiles = np.asarray(profiles, dtype=float)
    if profiles.ndim != 2:
        raise ValueError(f"profiles must have shape (n, n_bins), got {profiles.shape}")
    n, n_bins = profiles.shape
    if n == 0:
        return np.zeros(0)
    total = profiles.sum(axis=1)
    padded = np.zeros((n, n_bins + 2))
    padded[:, 1:-1] = profiles
    smooth = 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]
    peak = smooth.max(axis=1)
    positive = total > 0
    return np.where(positive, total / n_bins / np.where(positive, peak, 1.0), 0.0)
