"""Physics checks of the embedded linac simulator and the shard/merge workflow."""

from __future__ import annotations

import numpy as np
import pytest

from clarm.data import PhaseSpaceFile
from clarm.sim import (
    PROJECTIONS,
    SimConfig,
    draw_settings,
    histogram_projections,
    merge_shards,
    rf_gap_kick,
    setting_names,
    simulate,
    simulate_runs,
)

M = 3


@pytest.fixture(scope="module")
def physics_runs() -> tuple[np.ndarray, np.ndarray]:
    """Five runs from one batch: phase -3 deg, phase +3 deg, phase -3 deg with other particles,
    weak focusing, strong focusing."""
    cfg = SimConfig(modules=M, resolution=32, particles=2000)
    base = draw_settings(cfg, 0)
    early, late, weak, strong = base.copy(), base.copy(), base.copy(), base.copy()
    early[M:2 * M], late[M:2 * M] = -3.0, 3.0
    weak[2 * M], strong[2 * M] = 0.92, 1.08
    settings = np.stack([early, late, early, weak, strong])
    return simulate_runs(cfg, settings, [0, 0, 1, 0, 0])


def test_energy_rises_module_to_module(physics_runs):
    _, energy = physics_runs
    assert np.all(np.diff(energy, axis=1) > 10.0)  # about 15 MeV per module
    assert np.all(energy[:, 0] > 100.0) and np.all(energy[:, 0] < 120.0)


def test_rf_phase_closer_to_crest_gains_more_energy(physics_runs):
    _, energy = physics_runs
    # -33 deg vs -27 deg synchronous phase: cos(27)/cos(33) - 1 = 6 % more gain per gap
    gain_early = energy[0, -1] - 100.0
    gain_late = energy[1, -1] - 100.0
    assert gain_late / gain_early == pytest.approx(np.cos(np.radians(27)) /
                                                   np.cos(np.radians(33)), rel=0.01)


def test_e_phi_projection_reacts_to_rf_phase(physics_runs):
    images, _ = physics_runs
    ephi = PROJECTIONS.index((2, 5))
    assert ephi == 11
    by_phase = np.abs(images[0, :, ephi] - images[1, :, ephi]).sum(axis=(-1, -2))
    by_noise = np.abs(images[0, :, ephi] - images[2, :, ephi]).sum(axis=(-1, -2))
    assert np.all(by_phase > 4 * by_noise)


def _rms_columns(img: np.ndarray) -> np.ndarray:
    profile = img.sum(-2)
    axis = np.arange(img.shape[-1])
    mean = (profile * axis).sum(-1) / profile.sum(-1)
    return np.sqrt((profile * (axis - mean[..., None]) ** 2).sum(-1) / profile.sum(-1))


def test_beam_size_reacts_to_focusing(physics_runs):
    images, _ = physics_runs
    x_xp = PROJECTIONS.index((0, 3))
    weak, strong = _rms_columns(images[3, :, x_xp]), _rms_columns(images[4, :, x_xp])
    noise = np.abs(_rms_columns(images[0, :, x_xp]) - _rms_columns(images[2, :, x_xp]))
    assert np.max(np.abs(weak - strong)) > 0.1 * np.mean(weak)
    assert np.max(np.abs(weak - strong)) > 3 * np.max(noise)


def test_runs_differ_with_settings(tiny_h5):
    with PhaseSpaceFile(tiny_h5) as f:
        images = f.images([0, 1])
        settings = f.settings()
        assert f.attrs["setting_names"] == setting_names(M)
    assert not np.allclose(settings[0], settings[1])
    assert np.abs(images[0] - images[1]).sum() > 0.1 * np.abs(images[0]).sum()


def test_histogram_known_answer():
    coords = np.zeros((1, 4, 6))
    coords[0, :, 0] = [-0.75, -0.25, 0.25, 0.75]  # x in the centres of 4 pixels over +-1
    import torch

    img = histogram_projections(torch.as_tensor(coords), [1.0] * 6, 32, blur_px=0.0)
    assert img.shape == (1, 15, 32, 32)
    assert float(img[0, 0].sum()) == pytest.approx(1.0)
    # x-y projection: all particles at y = 0 (between rows 15 and 16), x columns 4, 12, 19, 27
    cols = img[0, 0].sum(0).numpy()
    assert cols[[4, 12, 20, 28]].sum() + cols[[3, 11, 19, 27]].sum() == pytest.approx(1.0)


def test_rf_gap_accelerates_reference_particle():
    import torch

    parts = torch.zeros(1, 2, 7)
    parts[..., 6] = 1.0
    energy = torch.tensor([938.272e6 + 100e6], dtype=torch.float64)
    out, e1 = rf_gap_kick(parts.double(), energy, torch.tensor([2e6]).double(),
                          torch.tensor([-30.0]).double(), 0.3724)
    assert float(e1 - energy) == pytest.approx(2e6 * np.cos(np.radians(30)), rel=1e-9)
    assert torch.allclose(out[..., :6], torch.zeros(1, 2, 6, dtype=torch.float64))


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
