from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from calo.data import read_showers
from calo.geometry import LAYERS, N_CELLS
from calo.observables import layer_energies
from calo.sim import SimConfig, cell_probabilities, merge_files, simulate_showers, simulate_to_file


def test_shapes_units_and_non_negative(showers):
    assert showers["energy"].shape == (2000, 1)
    assert showers["layer_0"].shape == (2000, 3, 96)
    assert showers["layer_1"].shape == (2000, 12, 12)
    assert showers["layer_2"].shape == (2000, 12, 6)
    assert showers["overflow"].shape == (2000, 3)
    assert 1.0 <= showers["energy"].min() and showers["energy"].max() <= 100.0
    for key in ("layer_0", "layer_1", "layer_2", "overflow"):
        assert showers[key].dtype == np.float32 and showers[key].min() >= 0.0
    # Cells in MeV, incident energy in GeV: the deposited total is close to the incident energy.
    ratio = layer_energies(showers).sum(1) / (1000.0 * showers["energy"][:, 0])
    assert 0.97 < ratio.mean() < 1.0


def test_rectangle_probability_matches_numerical_integral():
    radius = 7.0
    density = lambda y, x: radius**2 / (np.pi * (x * x + y * y + radius**2) ** 2)  # noqa: E731
    x_edges, y_edges = np.array([-30.0, 5.0, 40.0]), np.array([-10.0, 0.0, 25.0])
    probs = cell_probabilities(x_edges, y_edges, np.array(radius))
    expected = integrate.dblquad(density, 5.0, 40.0, -10.0, 0.0)[0]
    assert probs[1, 0] == pytest.approx(expected, rel=1e-9)
    # A huge window holds (almost) everything.
    big = cell_probabilities(np.array([-1e6, 0, 1e6]), np.array([-1e6, 1e6]), np.array(radius))
    assert big.sum() == pytest.approx(1.0, abs=1e-5)
    assert big[0, 0] == pytest.approx(0.5, abs=1e-5)


def _fractions(energy_gev: float, n: int = 600) -> np.ndarray:
    s = simulate_showers(n, SimConfig(seed=7), energies_gev=np.full(n, energy_gev))
    e = layer_energies(s)
    return (e / e.sum(1, keepdims=True)).mean(0)


def test_layer0_fraction_falls_with_energy_and_matches_reference_values():
    f = np.array([_fractions(e) for e in (1.0, 10.0, 50.0, 100.0)])
    assert np.all(np.diff(f[:, 0]) < 0)
    # Reference e+ values of the CaloGAN sample: about 0.72, 0.43, 0.26, 0.20.
    np.testing.assert_allclose(f[:, 0], [0.72, 0.43, 0.26, 0.20], atol=0.05)
    assert np.all(f[:, 2] < 0.01)  # layer 2 holds well under 1 %


def test_occupancy_per_layer_near_the_geant4_sample(showers):
    # Fraction of non-empty cells per layer; CaloGAN's Geant4 e+ sample (read off the analysis
    # notebook's plots, approximate): about 0.45, 0.85 (mode 0.90-0.95) and 0.25.
    cells = np.concatenate([showers[l.name].reshape(2000, -1) for l in LAYERS], 1)  # noqa: E741
    assert cells.shape[1] == N_CELLS
    occ = [float((showers[l.name] > 0).mean()) for l in LAYERS]  # noqa: E741
    assert 0.3 < occ[0] < 0.55 and 0.8 < occ[1] < 0.97 and 0.15 < occ[2] < 0.45


def test_soft_tail_of_hit_cells(showers):
    # Many soft spots with a falling spectrum: a large share of the hit cells hold < 1 MeV
    # (the earlier simulator, with 10-18 MeV spots, had under 1 %).
    below = []
    for layer in LAYERS:
        image = showers[layer.name]
        below.append(float((image[image > 0] < 1.0).mean()))
    assert below[0] > 0.3 and below[1] > 0.1 and below[2] > 0.3
    assert min(below) < 0.7  # hard spots remain: not every cell is soft


def test_lateral_width_grows_with_depth():
    # Same 40 mm x cells in layers 1 and 2: the energy-weighted x spread is wider in layer 2.
    s = simulate_showers(1500, SimConfig(seed=3), energies_gev=np.full(1500, 80.0))
    x1 = np.linspace(-220, 220, 12)

    def spread(image):
        profile = image.sum(axis=2).sum(axis=0)  # summed over showers
        mean = profile @ x1 / profile.sum()
        return np.sqrt(profile @ (x1 - mean) ** 2 / profile.sum())

    assert spread(s["layer_2"]) > 1.2 * spread(s["layer_1"])
    from calo.sim import _lateral

    cfg = SimConfig()
    r_core, _, _ = _lateral(cfg, np.array(50.0), np.array([0.3, 1.0, 2.0]))
    assert np.all(np.diff(r_core) > 0)
    # GFlash's tail radius has a minimum near the shower maximum and grows beyond it.
    _, r_tail, _ = _lateral(cfg, np.array(50.0), np.array([1.3, 2.0, 2.5]))
    assert np.all(np.diff(r_tail) > 0)


def test_lateral_parameters_stay_inside_the_fitted_range():
    from calo.sim import TAU_FIT_MAX, _lateral

    cfg = SimConfig()
    energies = np.array([1.0, 10.0, 100.0])[:, None]
    deep = _lateral(cfg, energies, np.array([[3.0, 6.0, 20.0]]))
    edge = _lateral(cfg, energies, np.array([[TAU_FIT_MAX]]))
    for got, want in zip(deep, edge, strict=True):
        np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape))
    # Without the clamp the tail radius at tau = 6 would be several Moliere radii.
    _, r_tail, _ = deep
    assert r_tail.max() < 2.0 * cfg.moliere_radius_mm


def _deposit_ratio(n: int, cfg: SimConfig) -> np.ndarray:
    s = simulate_showers(n, cfg, energies_gev=np.full(n, 50.0))
    return (layer_energies(s).sum(1) + s["overflow"].sum(1)) / 50_000.0


def test_no_resolution_smearing_by_default():
    # Energy is conserved: cells + overflow add up to the longitudinally contained energy, so the
    # spread of the deposit comes from leakage only (a few per mille at 50 GeV).
    plain = _deposit_ratio(1000, SimConfig(seed=2))
    assert plain.std() < 0.003 and 0.98 < plain.mean() < 1.0
    # The optional (non-CaloGAN) resolution term adds the stated relative spread.
    smeared = _deposit_ratio(1000, SimConfig(seed=2, resolution_stochastic=0.1))
    expected = np.hypot(0.1 / np.sqrt(50.0), plain.std())
    assert smeared.std() == pytest.approx(expected, rel=0.12)


def test_noise_option_adds_the_stated_noise():
    e = np.full(300, 30.0)
    clean = simulate_showers(300, SimConfig(seed=4), energies_gev=e)
    noisy = simulate_showers(300, SimConfig(seed=4, noise_mev=0.5), energies_gev=e)
    np.testing.assert_array_equal(clean["energy"], noisy["energy"])
    np.testing.assert_array_equal(clean["overflow"], noisy["overflow"])
    big = clean["layer_1"] > 20.0  # far above the noise: no clipping at zero
    diff = (noisy["layer_1"] - clean["layer_1"])[big].astype(np.float64)
    assert diff.size > 1000
    assert diff.std() == pytest.approx(0.5, rel=0.06) and abs(diff.mean()) < 0.05
    # Noise lights empty cells (read out as max(E + noise, 0)), never makes negative cells.
    empty = clean["layer_2"] == 0
    assert 0.4 < (noisy["layer_2"][empty] > 0).mean() < 0.6
    assert min(noisy[k].min() for k in ("layer_0", "layer_1", "layer_2")) >= 0.0


def test_photons_start_later_than_positrons():
    e = np.full(800, 20.0)
    pos = layer_energies(simulate_showers(800, SimConfig(seed=1), energies_gev=e))
    gam = layer_energies(simulate_showers(800, SimConfig(seed=1, particle="gamma"),
                                          energies_gev=e))
    assert (gam[:, 0] / gam.sum(1)).mean() < (pos[:, 0] / pos.sum(1)).mean() - 0.03


def test_reproducible_and_seed_dependent():
    a = simulate_showers(50, SimConfig(seed=5))
    b = simulate_showers(50, SimConfig(seed=5))
    c = simulate_showers(50, SimConfig(seed=6))
    np.testing.assert_array_equal(a["layer_1"], b["layer_1"])
    assert not np.array_equal(a["layer_1"], c["layer_1"])


def test_shards_merge_to_the_unsharded_file(tmp_path):
    cfg = SimConfig(seed=11)
    simulate_to_file(tmp_path / "full.h5", 2500, cfg)
    parts = []
    for i in range(3):
        parts.append(tmp_path / f"part{i}.h5")
        simulate_to_file(parts[-1], 2500, cfg, shard=(i, 3))
    assert merge_files(parts, tmp_path / "merged.h5") == 2500
    full, merged = read_showers(tmp_path / "full.h5"), read_showers(tmp_path / "merged.h5")
    for key in full:
        np.testing.assert_array_equal(full[key], merged[key])


@pytest.mark.parametrize("kwargs", [
    {"particle": "piplus"}, {"energy_min_gev": -1.0}, {"energy_min_gev": 50.0,
                                                       "energy_max_gev": 10.0},
    {"moliere_radius_mm": 0.0}, {"slices": (1, 0, 1)}, {"soft_fraction": 1.5},
    {"soft_spot_mev": 0.0}, {"noise_mev": -1.0}, {"tau_max": 0.0}, {"noise_mev": float("nan")},
])
def test_bad_config(kwargs):
    with pytest.raises(ValueError):
        SimConfig(**kwargs)


def test_bad_energies():
    with pytest.raises(ValueError, match="positive"):
        simulate_showers(2, energies_gev=np.array([10.0, -1.0]))
    with pytest.raises(ValueError):
        simulate_showers(-3)


def test_random_stream_depends_on_particle_and_files_carry_provenance(tmp_path):
    from calo.sim import file_provenance

    e = simulate_showers(20, SimConfig(seed=1, particle="eplus"))["energy"]
    g = simulate_showers(20, SimConfig(seed=1, particle="gamma"))["energy"]
    assert not np.allclose(e, g)  # e+ and gamma of one seed are independent streams
    simulate_to_file(tmp_path / "g.h5", 30, SimConfig(seed=4, particle="gamma"), shard=(1, 3))
    (prov,) = file_provenance(tmp_path / "g.h5")
    assert (prov.source, prov.seed, prov.setting, prov.start, prov.stop, prov.shard) == (
        "calo.sim", 4, "gamma", 10, 20, "1/3")
