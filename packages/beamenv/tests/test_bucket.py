"""Potential well, separatrix and the adiabatic (area-preserving) beam transfer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from beamenv.bucket import Bucket, RFState, bunching_factor, transfer_beam
from beamenv.machine import PROTON_MASS_EV, PSBRing, momentum_from_ek


def _state(v2: float = 0.0, gain: float = 0.0, phi2: float = math.pi) -> RFState:
    return RFState(PSBRing(), float(momentum_from_ek(160e6)), gain, 8e3, v2, math.pi, phi2)


def test_stationary_bucket_area_matches_analytic() -> None:
    st = _state()
    bucket = Bucket(st)
    energy = math.hypot(st.momentum_eV_c, PROTON_MASS_EV)
    omega_rf = 2 * math.pi / st.t_rev_s
    # A = 16 / omega_rf * sqrt(beta^2 E e V / (2 pi h |eta|))   (eV s), single harmonic
    analytic = 16 / omega_rf * math.sqrt(st.beta**2 * energy * 8e3 / (2 * math.pi * abs(st.eta)))
    assert bucket.bucket_area_eVs == pytest.approx(analytic, rel=0.01)
    assert bucket.centre_s == pytest.approx(0.5 * st.t_rev_s, rel=1e-2)
    assert bucket.bucket_length_s == pytest.approx(st.t_rev_s, rel=1e-2)


def test_acceleration_shrinks_bucket_and_bunch_lengthening_flattens_well() -> None:
    assert Bucket(_state(gain=2e3)).bucket_area_eVs < Bucket(_state()).bucket_area_eVs
    blm = Bucket(_state(v2=4e3, phi2=math.pi))  # V2/V1 = 0.5 at phi2 = pi: flat bottom
    single = Bucket(_state())
    t = np.linspace(-0.05, 0.05, 11) * blm.state.t_rev_s
    depth_blm = blm.potential(blm.centre_s + t) - blm.potential(blm.centre_s)
    depth_sh = single.potential(single.centre_s + t) - single.potential(single.centre_s)
    assert np.max(depth_blm) < 0.05 * np.max(depth_sh)


def test_transfer_preserves_area_and_identity() -> None:
    rng = np.random.default_rng(0)
    old = Bucket(_state(v2=6e3))
    new = Bucket(_state(v2=6e3, gain=1.5e3))
    dt = old.centre_s + rng.normal(0, 0.08, 2000) * old.state.t_rev_s
    de = rng.normal(0, 0.3, 2000) * float(old.separatrix()[1].max())
    inside = old.inside(dt, de)
    dt2, de2, alive = transfer_beam(dt, de, old, new)
    assert alive.sum() > 0.9 * inside.sum()
    a_old = old.area_of(old.hamiltonian(dt, de))[alive]
    a_new = new.area_of(new.hamiltonian(dt2, de2))[alive]
    scale = new.bucket_area_eVs
    assert np.max(np.abs(a_new - a_old)) < 0.02 * scale
    assert np.all(new.inside(dt2[alive], de2[alive]))
    # same bucket: (almost) all positions move by at most a grid cell; in this double well a
    # few particles whose level straddles a table row may switch islands (documented)
    dt3, _de3, alive3 = transfer_beam(dt, de, old, old)
    moved = np.abs(dt3 - dt)[alive3]
    assert np.quantile(moved, 0.98) < 2 * old.dt_step


def test_bunching_factor_known_values() -> None:
    assert bunching_factor(np.ones(64)) == pytest.approx(1.0)
    flat_half = np.r_[np.zeros(32), np.ones(32) * 10]
    assert bunching_factor(flat_half) == pytest.approx(0.5)
    assert bunching_factor(np.zeros(8)) == 0.0


def _n_wells(state: RFState) -> int:
    """Local minima of the potential inside one period [0, T_rev)."""
    bucket = Bucket(state, n_points=2400)
    u, t = bucket.u, bucket.t
    inner = (u[1:-1] < u[:-2]) & (u[1:-1] <= u[2:])
    t_min = t[1:-1][inner]
    return int(np.sum((t_min >= 0) & (t_min < state.t_rev_s)))


def test_double_well_appears_near_extraction_with_phi2_pi() -> None:
    """With V2/V1 = 0.75 > 1/2 at Phi_2 = pi, the stationary double-harmonic potential has two
    wells; on the default cycle acceleration keeps a single well mid-ramp, and the double well
    appears as dB/dt -> 0 before extraction (the zero-policy bunch then splits in two)."""
    from beamenv.machine import default_cycle

    ring = PSBRing()
    prog = default_cycle(ring)
    energy = np.sqrt(prog.momentum_eV_c**2 + PROTON_MASS_EV**2)
    de_dt = np.gradient(energy, prog.time_s)

    def state_at(t_s: float, ratio_v2: float | None = None) -> RFState:
        p = float(prog.momentum_at(t_s))
        gain = float(np.interp(t_s, prog.time_s, de_dt) * ring.revolution_period_s(p))
        v1, v2 = (float(v) for v in prog.voltages_at(t_s))
        if ratio_v2 is not None:
            v2 = ratio_v2 * v1
        return RFState(ring, p, gain, v1, v2, math.pi, math.pi)

    assert _n_wells(state_at(0.265)) == 1            # mid-ramp, about 3.5 keV per turn
    assert _n_wells(state_at(0.505)) == 2            # dB/dt nearly zero, V2/V1 still 0.75
    assert _n_wells(state_at(0.505, ratio_v2=0.4)) == 1  # below the r = 1/2 flat-bucket limit


def test_emittance_is_smallest_in_the_matched_bucket() -> None:
    """The 90 % orbit area of a matched bunch is smallest in its own bucket: measured in the
    bucket of another Phi_2 (a phase jump) it is larger - the emittance it filaments to."""
    import math

    from beamenv.fidelity import get_fidelity
    from beamenv.machine import CyclePrograms, momentum_from_ek
    from beamenv.sim import BeamSimulator

    p0 = float(momentum_from_ek(160e6))
    prog = CyclePrograms(np.array([0.0, 1.0]), np.full(2, p0), np.full(2, 8e3), np.full(2, 4e3))
    sim = BeamSimulator(PSBRing(intensity=0.0), prog, get_fidelity("fast"))
    dt, de = sim.matched_beam(0.0, math.pi, 1.0, 4000, seed=2)
    own = Bucket(sim.state_at(0.0, math.pi)).emittance_eVs(dt, de)
    # parabolic amplitude: density (1 - A / A_0) in area, 90 % inside 1 - sqrt(0.1) = 0.68 A_0
    assert own == pytest.approx(1.0 - math.sqrt(0.1), rel=0.1)
    for shift, low in ((-0.3, 0.98), (0.3, 0.98), (-1.5, 1.08), (1.5, 1.08)):
        # measured: 0.996-0.994 x own for +-0.3 rad (sampling noise), 1.11-1.13 x for +-1.5 rad
        assert Bucket(sim.state_at(0.0, math.pi + shift)).emittance_eVs(dt, de) > low * own


# ---------------------------------------------------------------- equality with the direct formulas
# The bucket tables, the potential, the emittance and the double-well cell look-up are computed
# without the (n_levels, window) masks and per-particle interpolations they are defined by; these
# tests recompute them from the definitions and require equal results.

def _reference_tables(bucket: Bucket) -> dict[str, np.ndarray | bool]:
    """The tables as defined: the {U < H} mask per level and window cell, its counts, first and
    last cells, the areas 2 sum sqrt(max(H - U, 0) / a) dt, the cumulative counts."""
    uw = bucket.u[bucket.left: bucket.right + 1]
    diff = bucket.levels[:, None] - uw[None, :]
    inside = diff > 0
    area = 2.0 * np.sum(np.sqrt(np.where(inside, diff, 0.0) / bucket.a), axis=1) * bucket.dt_step
    cum = np.cumsum(inside, axis=1, dtype=np.int32)
    count = cum[:, -1]
    first = np.argmax(inside, axis=1)
    last = inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)
    tw = bucket.t[bucket.left: bucket.right + 1]
    centre = bucket.centre_s
    return {"area": area, "cum": cum,
            "single": bool(np.all((count == 0) | (count == last - first + 1))),
            "lo": np.where(count > 0, tw[first] - 0.5 * bucket.dt_step, centre),
            "hi": np.where(count > 0, tw[last] + 0.5 * bucket.dt_step, centre)}


_TABLE_STATES = [dict(), dict(v2=6e3), dict(v2=6e3, gain=1.5e3), dict(v2=4e3, phi2=2.5),
                 dict(v2=6e3, phi2=0.3, gain=500.0), dict(gain=2e3), dict(gain=9e3)]


@pytest.mark.parametrize("kwargs", _TABLE_STATES)
def test_bucket_tables_equal_their_definition(kwargs: dict) -> None:
    bucket = Bucket(_state(**kwargs))
    if not bucket.valid:  # gain above the voltage: no bucket, nothing to tabulate
        assert kwargs == dict(gain=9e3)
        return
    ref = _reference_tables(bucket)
    np.testing.assert_array_equal(bucket.area, ref["area"])
    np.testing.assert_array_equal(bucket._cum, ref["cum"])
    np.testing.assert_array_equal(bucket._lo, ref["lo"])
    np.testing.assert_array_equal(bucket._hi, ref["hi"])
    assert bucket.single == ref["single"]
    # cell table: cells[start[r] + i] is where row r of the cumulative counts first reaches
    # i + 1, which the transfer used to find by searching the row-offset, flattened counts
    cum = ref["cum"]
    cells, start = bucket._cells
    width = cum.shape[1]
    flat = (cum + (np.arange(cum.shape[0]) * (width + 1))[:, None]).ravel()
    for r in range(cum.shape[0]):
        for i in range(int(cum[r, -1])):
            pos = int(np.searchsorted(flat, i + 1 + r * (width + 1), side="left"))
            assert cells[start[r] + i] == pos - r * width


def test_double_well_tables_are_met() -> None:
    """The parametrised states above include double wells (so the cell table is exercised)."""
    assert not Bucket(_state(v2=6e3)).single
    assert Bucket(_state()).single


@pytest.mark.parametrize("kwargs", [dict(), dict(v2=6e3, phi2=0.3, gain=500.0)])
def test_potential_equals_the_antiderivative_formula(kwargs: dict) -> None:
    """U(t) = -sign(eta) (W(t) - W(t0)) with W written out (the in-place evaluation is the
    same operations in the same order: equal to the last bit)."""
    st = _state(**kwargs)
    bucket = Bucket(st)
    w = 2.0 * np.pi / st.t_rev_s

    def antiderivative(x: np.ndarray) -> np.ndarray:
        return (-st.v1_V / w * np.cos(w * x + st.phi1_rad)
                - st.v2_V / (2.0 * w) * np.cos(2.0 * w * x + st.phi2_rad)
                - st.energy_gain_eV * x)

    rng = np.random.default_rng(3)
    t = rng.uniform(-0.5, 1.5, 3000) * st.t_rev_s
    de = rng.normal(0.0, 3e5, 3000)
    t0 = np.array(-0.5 * st.t_rev_s)  # the first grid time of the bucket
    expected = -np.sign(st.eta) * (antiderivative(t) - antiderivative(t0))
    np.testing.assert_array_equal(bucket.potential(t), expected)
    np.testing.assert_array_equal(bucket.hamiltonian(t, de), bucket.a * de**2 + expected)
    assert bucket.potential(float(t[5])) == expected[5]


def test_emittance_equals_the_quantile_of_particle_areas() -> None:
    """The 90 % quantile of H mapped to its area equals the 90 % quantile of the per-particle
    areas (outside particles counting with the full bucket area), the definition."""
    bucket = Bucket(_state(v2=6e3, gain=1.5e3))
    rng = np.random.default_rng(4)
    for n in (1, 7, 2000):
        dt = bucket.centre_s + rng.normal(0, 0.15, n) * bucket.state.t_rev_s
        de = rng.normal(0, 0.4, n) * float(bucket.separatrix()[1].max())
        h = bucket.hamiltonian(dt, de)
        inside = bucket.inside(dt, de, h)
        for fraction in (0.5, 0.9, 1.0):
            areas = np.where(inside, bucket.area_of(h), bucket.bucket_area_eVs)
            k = max(min(int(np.ceil(fraction * n)) - 1, n - 1), 0)
            expected = float(np.partition(areas, k)[k])
            assert bucket.emittance_from_h(h, inside, fraction) == expected
            assert bucket.emittance_eVs(dt, de, fraction) == expected
        h_in = h[inside]
        if h_in.size:
            k = max(min(int(np.ceil(0.9 * h_in.size)) - 1, h_in.size - 1), 0)
            assert bucket.emittance_from_h(h_in) == float(
                np.partition(bucket.area_of(h_in), k)[k])


def _bunching_factor_formula(counts: np.ndarray) -> float:
    """B_f = mean / peak of the [1, 2, 1] / 4-smoothed (zero-padded) profile; 0 if empty."""
    if counts.sum() <= 0:
        return 0.0
    padded = np.concatenate([[0.0], counts, [0.0]])
    smooth = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return float(counts.sum() / counts.size / smooth.max())


def test_bunching_factors_follow_the_formula_row_by_row() -> None:
    from beamenv.bucket import bunching_factors

    rng = np.random.default_rng(5)
    profiles = rng.integers(0, 40, size=(5, 64)).astype(float)
    profiles[3] = 0.0
    expected = [_bunching_factor_formula(p) for p in profiles]
    np.testing.assert_allclose(bunching_factors(profiles), expected, rtol=1e-15)
    assert [bunching_factor(p) for p in profiles] == pytest.approx(expected, rel=1e-15)
    assert bunching_factors(np.zeros((0, 64))).shape == (0,)
    with pytest.raises(ValueError):
        bunching_factors(np.ones(64))


@pytest.mark.parametrize("kwargs", [dict(gain=1.5e3), dict(v2=6e3, gain=1.5e3)])
def test_transfer_is_particle_by_particle(kwargs: dict) -> None:
    """The transfer sorts particles by a coarse key only for speed: a permuted beam gives the
    permuted result, to the last bit (single well and double well)."""
    old = Bucket(_state(v2=kwargs.get("v2", 0.0)))
    new = Bucket(_state(**kwargs))
    rng = np.random.default_rng(6)
    dt = old.centre_s + rng.normal(0, 0.08, 3000) * old.state.t_rev_s
    de = rng.normal(0, 0.3, 3000) * float(old.separatrix()[1].max())
    out = transfer_beam(dt, de, old, new)
    perm = rng.permutation(dt.size)
    out_perm = transfer_beam(dt[perm], de[perm], old, new)
    for a, b in zip(out, out_perm, strict=True):
        np.testing.assert_array_equal(a[perm], b)
    assert out[2].sum() > 2000  # most particles carried over


@pytest.mark.parametrize("kwargs", [dict(gain=1.5e3), dict(v2=6e3, gain=1.5e3)])
def test_carry_beam_is_transfer_beam_without_the_lost(kwargs: dict) -> None:
    """carry_beam returns the particles transfer_beam keeps alive (same coordinates, to the
    last bit, in another order) and counts the others as lost."""
    from beamenv.bucket import carry_beam

    old = Bucket(_state(v2=kwargs.get("v2", 0.0)))
    new = Bucket(_state(**kwargs))
    rng = np.random.default_rng(7)
    dt = old.centre_s + rng.normal(0, 0.12, 3000) * old.state.t_rev_s
    de = rng.normal(0, 0.4, 3000) * float(old.separatrix()[1].max())
    dt2, de2, alive = transfer_beam(dt, de, old, new)
    dt3, de3, n_lost = carry_beam(dt, de, old, new)
    assert 0 < n_lost == int((~alive).sum()) < 3000
    ref = np.lexsort((de2[alive], dt2[alive]))
    got = np.lexsort((de3, dt3))
    np.testing.assert_array_equal(dt3[got], dt2[alive][ref])
    np.testing.assert_array_equal(de3[got], de2[alive][ref])


def test_line_densities_follow_the_definition_row_by_row() -> None:
    """All snapshots binned at once give, row by row, the count of times in bin
    floor(dt n_bins / T_rev) over [0, T_rev); edges and non-finite times (dropped) included,
    without warnings."""
    import warnings

    from beamenv.bucket import line_densities, line_density

    t_rev = 1e-6
    rng = np.random.default_rng(8)
    dt = rng.uniform(-0.5, 1.5, (4, 3000)) * t_rev
    dt[0, :8] = [np.nan, np.inf, -np.inf, 0.0, -0.0, t_rev, -1e-30, 1e300]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = line_densities(dt, t_rev, 64)
    for row, counts in zip(dt, got, strict=True):
        x = row * (64 / t_rev)
        x = x[np.isfinite(x) & (x >= 0) & (x < 64)]
        np.testing.assert_array_equal(counts, np.bincount(np.floor(x).astype(int), minlength=64))
        np.testing.assert_array_equal(line_density(row, t_rev, 64), counts)
    assert line_densities(np.zeros((0, 5)), t_rev, 64).shape == (0, 64)
