"""Physics checks of the embedded linac simulator and the shard/merge workflow."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from clarm.data import PhaseSpaceFile
from clarm.sim import (
    DEFAULT_RANGES,
    E_PHI_CHANNEL,
    PROJECTIONS,
    PROTON_MASS_EV,
    SimConfig,
    TrackResult,
    design_energies_eV,
    design_settings,
    histogram_projections,
    merge_shards,
    projection_names,
    rf_gap_kick,
    setting_names,
    simulate,
    simulate_runs,
    space_charge_kick,
    track_runs,
    wangler_kl0,
)

M = 3
PM = 4  # modules of the physics batch


def _settings(cfg: SimConfig, charge: float = 75.0, phase: tuple[int, float] | None = None,
              quad: float = 1.0) -> np.ndarray:
    s = design_settings(cfg)
    s[-1] = charge
    s[2 * cfg.modules] = quad
    if phase is not None:
        s[cfg.modules + phase[0]] = phase[1]
    return s


@pytest.fixture(scope="module")
def physics() -> tuple[SimConfig, TrackResult]:
    """One batch of design-lattice runs (particles of run index 0 unless said otherwise):
    0: 75 pC; 1: 0 pC (no space charge); 2, 3: as 0, 1 with other particles; 4: +3 deg RF
    phase error in module 2 (index 1); 5: 0 pC, +1 deg in module 1 (a small synchrotron
    oscillation); 6, 7: quadrupoles at 0.92 and 1.08 of design."""
    cfg = SimConfig(modules=PM, resolution=32, particles=2000)
    settings = np.stack([_settings(cfg), _settings(cfg, 0.0), _settings(cfg),
                         _settings(cfg, 0.0), _settings(cfg, phase=(1, 3.0)),
                         _settings(cfg, 0.0, phase=(0, 1.0)), _settings(cfg, quad=0.92),
                         _settings(cfg, quad=1.08)])
    return cfg, track_runs(cfg, settings, [0, 0, 1, 1, 0, 0, 0, 0])


def test_energy_rises_by_the_design_gain(physics):
    cfg, res = physics
    per_module = 2 * cfg.cells_per_module * cfg.gain_per_gap_MeV  # 15.2 MeV
    np.testing.assert_allclose(np.diff(res.energy_MeV[:4], axis=1), per_module, rtol=0.02)
    assert res.energy_MeV[0, 0] == pytest.approx(100.0 + per_module, rel=0.01)
    assert np.all(res.lost_fraction[:4] < 0.02) and np.all(res.lost_fraction >= 0)


def test_zero_charge_space_charge_kick_changes_nothing():
    import cheetah

    gen = torch.Generator().manual_seed(0)
    parts = torch.ones(2, 500, 7)
    parts[..., :6] = torch.randn(2, 500, 6, generator=gen) * torch.tensor(
        [2e-3, 1e-3, 2e-3, 1e-3, 5e-3, 1e-3])
    parts[1, :, 4] += 3e-3  # an off-centre bunch
    kick = cheetah.SpaceChargeKick(effect_length=torch.tensor(1.2), grid_shape=(16, 16, 16))
    energy = torch.full((2,), 1.04e9)
    out = space_charge_kick(kick, parts, energy, torch.zeros(2, 500), torch.ones(2, 500))
    assert torch.allclose(out, parts, atol=1e-6, rtol=0)
    charged = space_charge_kick(kick, parts, energy, torch.full((2, 500), 75e-12 / 500),
                                torch.ones(2, 500))
    assert (charged - parts)[..., [1, 3, 5]].abs().max() > 1e-6  # and a real charge kicks


def test_space_charge_changes_rms_divergence_above_noise(physics):
    cfg, res = physics
    on, off = res.rms[0, :, 3], res.rms[1, :, 3]  # x' rms (mrad), same particles
    on_b, off_b = res.rms[2, :, 3], res.rms[3, :, 3]  # other particles
    stderr = off / np.sqrt(2 * cfg.particles)  # standard error of an rms estimate
    k = int(np.argmax(np.abs(on - off)))
    assert abs(on[k] - off[k]) > 5 * stderr[k]
    assert np.sign(on[k] - off[k]) == np.sign(on_b[k] - off_b[k])


def test_space_charge_kick_spacing_converged():
    """Halving the kick spacing (the default 2 -> 4 kicks per cell, 0.6 -> 0.3 m) changes the
    rms sizes, divergences, phase and energy spreads after 2 modules by less than 1.5 %
    (same particles, 100 pC, the top of the default range; measured about 1.0 %; 1 -> 2
    kicks changes them by 1.4-2.1 %)."""
    cfg = SimConfig(modules=2, resolution=32, particles=1500)
    assert cfg.space_charge_kicks_per_cell == 2
    s = _settings(cfg, 100.0)[None]
    coarse = track_runs(cfg, s, [0], images=False).rms[0, -1]
    fine = track_runs(replace(cfg, space_charge_kicks_per_cell=4), s, [0],
                      images=False).rms[0, -1]
    np.testing.assert_allclose(fine, coarse, rtol=0.015)


def test_longitudinal_phase_advance_matches_wangler(physics):
    """Small-amplitude synchrotron phase advance per cell, from the centroid oscillation
    started by a 1 deg phase error in module 1, against Wangler's smooth-approximation
    k_l0 * L_cell averaged over the same cells (energy rises, so k_l0 falls)."""
    cfg, res = physics
    lam, cells = cfg.wavelength_m, cfg.cells_per_module
    energies = design_energies_eV(cfg)
    angle, analytic = [], []
    for c in range(cells - 1, PM * cells):  # from the exit of module 1 on
        e_tot = energies[2 * (c + 1)]
        kinetic = e_tot - PROTON_MASS_EV
        bg2 = (e_tot / PROTON_MASS_EV) ** 2 - 1
        pc = np.sqrt(e_tot**2 - PROTON_MASS_EV**2)
        k = wangler_kl0(cfg, kinetic / 1e6)
        tau = res.cell_centroid[5, c, 2] / 360 * lam
        delta = res.cell_centroid[5, c, 5] / 100 * kinetic / pc
        angle.append(np.arctan2(delta / (bg2 * k), tau))  # normalised phase-space angle
        analytic.append(k * cfg.cell_length_m)
    measured = (np.unwrap(angle)[-1] - np.unwrap(angle)[0]) / (len(angle) - 1)
    expected = float(np.mean(analytic[1:]))
    assert measured == pytest.approx(expected, rel=0.10)


def _centroid(img: np.ndarray) -> np.ndarray:
    """(row, column) centroid in pixels of images (..., H, W)."""
    axis = np.arange(img.shape[-1])
    total = img.sum(axis=(-1, -2))
    return np.stack([(img.sum(-1) * axis).sum(-1) / total,
                     (img.sum(-2) * axis).sum(-1) / total], axis=-1)


def test_phase_error_moves_e_phi_centroid_of_every_later_module(physics):
    _, res = physics
    assert PROJECTIONS[E_PHI_CHANNEL] == (5, 2)  # rows dW, columns phi
    ephi = res.images[:, :, E_PHI_CHANNEL]
    shift = np.linalg.norm(_centroid(ephi[4]) - _centroid(ephi[0]), axis=-1)
    noise = np.linalg.norm(_centroid(ephi[2]) - _centroid(ephi[0]), axis=-1)
    assert np.all(shift[1:] > 5 * noise[1:]), (shift, noise)
    np.testing.assert_allclose(shift[0], 0.0, atol=1e-6)  # upstream of the error: no change


def _rms_rows(img: np.ndarray) -> np.ndarray:
    profile = img.sum(-1)
    axis = np.arange(img.shape[-2])
    mean = (profile * axis).sum(-1) / profile.sum(-1)
    return np.sqrt((profile * (axis - mean[..., None]) ** 2).sum(-1) / profile.sum(-1))


def test_beam_size_reacts_to_focusing(physics):
    _, res = physics
    weak, strong, nominal = res.rms[6, :, 0], res.rms[7, :, 0], res.rms[0, :, 0]
    assert np.max(np.abs(weak - strong)) > 0.1 * np.mean(nominal)
    # the x-x' image (channel 0, rows x) sees it too
    img_w, img_s = _rms_rows(res.images[6, :, 0]), _rms_rows(res.images[7, :, 0])
    assert np.max(np.abs(img_w - img_s)) > 0.05 * np.mean(img_w)


def test_public_channel_order():
    names = projection_names()
    assert names[1] == "x-y" and names[11] == "dW-phi" and names[12] == "xp-yp"
    assert names[0] == "x-xp" and names[14] == "dW-yp"
    assert sorted(tuple(sorted(p)) for p in PROJECTIONS) == sorted(
        itertools.combinations(range(6), 2))
    assert DEFAULT_RANGES == {"x": 30.0, "y": 30.0, "phi": 60.0, "xp": 10.0, "yp": 10.0,
                              "dW": 1.3}


def test_runs_differ_with_settings(tiny_h5):
    with PhaseSpaceFile(tiny_h5) as f:
        images = f.images([0, 1])
        settings = f.settings()
        assert f.attrs["setting_names"] == setting_names(M)
    assert not np.allclose(settings[0], settings[1])
    assert np.abs(images[0] - images[1]).sum() > 0.1 * np.abs(images[0]).sum()


def test_histogram_known_answer():
    coords = np.zeros((1, 4, 6))
    coords[0, :, 0] = [-0.75, -0.25, 0.25, 0.75]  # x between pixel centres over +-1

    img = histogram_projections(torch.as_tensor(coords), [1.0] * 6, 32, blur_px=0.0)
    assert img.shape == (1, 15, 32, 32)
    assert float(img[0, 1].sum()) == pytest.approx(1.0)
    # x-y projection (channel 1): rows are x, all particles at y = 0 (columns 15 and 16)
    rows = img[0, 1].sum(1).numpy()
    np.testing.assert_allclose(rows[[3, 4, 11, 12, 19, 20, 27, 28]], 0.125)
    np.testing.assert_allclose(img[0, 1].sum(0).numpy()[[15, 16]], 0.5)
    half = histogram_projections(torch.as_tensor(coords), [1.0] * 6, 32,
                                 weights=torch.tensor([[0.5, 0.0, 0.0, 0.0]]))
    assert float(half[0, 1].sum()) == pytest.approx(0.5)  # lost particles weigh nothing


def test_rf_gap_against_the_design_reference():
    parts = torch.zeros(1, 2, 7, dtype=torch.float64)
    parts[..., 6] = 1.0
    parts[0, 1, 4] = 1e-3  # 1 mm late: phase + 360 * 1e-3 / lambda
    lam, volt, phi_d = 0.3724, 2e6, -30.0
    design_gain = volt * np.cos(np.radians(phi_d))
    energy = torch.tensor([PROTON_MASS_EV + 100e6], dtype=torch.float64)
    out, e1 = rf_gap_kick(parts, energy, torch.tensor([volt], dtype=torch.float64),
                          torch.tensor([phi_d + 3.0], dtype=torch.float64), lam, design_gain)
    assert float(e1 - energy) == pytest.approx(design_gain, rel=1e-12)  # design reference
    p1c = float(torch.sqrt(e1**2 - PROTON_MASS_EV**2))
    expect0 = volt * (np.cos(np.radians(phi_d + 3.0)) - np.cos(np.radians(phi_d))) / p1c
    assert float(out[0, 0, 5]) == pytest.approx(expect0, rel=1e-9)  # the phase error
    phi1 = np.radians(phi_d + 3.0) + 2 * np.pi * 1e-3 / lam
    expect1 = volt * (np.cos(phi1) - np.cos(np.radians(phi_d))) / p1c
    assert float(out[0, 1, 5]) == pytest.approx(expect1, rel=1e-9)
    np.testing.assert_array_equal(out[..., 4].numpy(), parts[..., 4].numpy())  # thin: no dt


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="power of two"):
        SimConfig(resolution=48).validate()
    with pytest.raises(ValueError):
        SimConfig(particles=10).validate()
    with pytest.raises(ValueError, match="shape"):
        simulate_runs(SimConfig(modules=2), np.zeros((1, 3)), [0])


def test_shards_merge_to_the_unsharded_file(tmp_path):
    cfg = SimConfig(runs=3, modules=2, resolution=32, particles=300, seed=5, batch_runs=3)
    simulate(cfg, tmp_path / "all.h5", progress_bar=False)
    simulate(cfg, tmp_path / "s1.h5", shard=(1, 2), progress_bar=False)
    simulate(cfg, tmp_path / "s0.h5", shard=(0, 2), progress_bar=False)
    assert merge_shards([tmp_path / "s1.h5", tmp_path / "s0.h5"], tmp_path / "m.h5") == 3
    with PhaseSpaceFile(tmp_path / "all.h5") as a, PhaseSpaceFile(tmp_path / "m.h5") as b:
        np.testing.assert_array_equal(a.run_index(), b.run_index())
        np.testing.assert_allclose(a.settings(), b.settings())
        np.testing.assert_allclose(a.images(), b.images(), atol=1e-6)
    other = SimConfig(runs=1, modules=2, resolution=32, particles=300, seed=6)
    simulate(other, tmp_path / "o.h5", progress_bar=False)
    with pytest.raises(ValueError, match="different simulations"):
        merge_shards([tmp_path / "s0.h5", tmp_path / "o.h5"], tmp_path / "bad.h5")
