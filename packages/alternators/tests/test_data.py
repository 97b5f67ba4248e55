"""Lorenz integration, spiking observation model, data files and their validation."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from alternators.data import (
    SEQUENCE_SCHEMA,
    LorenzConfig,
    NeuronPopulation,
    SequenceData,
    Standardizer,
    default_split,
    integrate_lorenz,
    load_sequences,
    lorenz_rhs,
    preprocess_spikes,
    save_sequences,
    simulate_lorenz,
    simulate_spikes,
    stack_history,
)
from physml_core.errors import DataFormatError
from physml_core.hdf5 import concat_h5


def test_lorenz_fixed_points_have_zero_derivative():
    beta, rho = 8.0 / 3.0, 28.0
    c = np.sqrt(beta * (rho - 1.0))
    points = np.array([[0.0, 0.0, 0.0], [c, c, rho - 1.0], [-c, -c, rho - 1.0]])
    np.testing.assert_allclose(lorenz_rhs(points), 0.0, atol=1e-12)


def test_rk4_matches_a_high_accuracy_reference():
    initial = np.array([[1.0, 1.0, 20.0], [-5.0, 3.0, 30.0]])
    ours = integrate_lorenz(initial, n_steps=34, dt=0.03, substeps=6)  # up to t = 0.99
    t_eval = 0.03 * np.arange(34)
    for i in range(2):
        ref = solve_ivp(lambda t, s: lorenz_rhs(s), (0, t_eval[-1]), initial[i], t_eval=t_eval,
                        method="DOP853", rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(ours[i], ref.y.T, atol=2e-4)


def test_integration_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        integrate_lorenz(np.zeros(3), 5)


def test_spikes_are_binary_and_follow_tuning():
    rng = np.random.default_rng(0)
    pop = NeuronPopulation(centres=np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]),
                           widths=np.array([1.0, 1.0]), baseline=np.array([0.0, 0.0]),
                           peak=np.array([0.8, 0.8]), history=np.array([0.0, 0.0]))
    latents = np.zeros((4, 500, 3))  # sitting on the first neuron's centre
    spikes = simulate_spikes(latents, pop, rng)
    assert spikes.dtype == np.uint8 and set(np.unique(spikes)) <= {0, 1}
    # P(spike) = 1 - exp(-0.8) for the tuned neuron, ~0 for the far one
    assert abs(spikes[..., 0].mean() - (1 - np.exp(-0.8))) < 0.03
    assert spikes[..., 1].mean() < 0.01


def test_history_stacking_and_preprocessing():
    signal = np.arange(10, dtype=float).reshape(1, 5, 2)
    stacked = stack_history(signal, 2)
    assert stacked.shape == (1, 5, 4)
    np.testing.assert_array_equal(stacked[0, 3, 2:], signal[0, 2])
    np.testing.assert_array_equal(stacked[0, 0, 2:], signal[0, 0])
    spikes = np.zeros((2, 30, 3), dtype=np.uint8)
    spikes[:, 15, 0] = 1
    x = preprocess_spikes(spikes, np.array([True, False, True]), smoothing_sigma=2.0, history=2)
    assert x.shape == (2, 30, 4) and x.dtype == np.float32
    # causal (default): nothing before the spike, a decaying trace after it
    assert x[0, 15, 0] == x[0, :, 0].max() and x[0, 14, 0] == 0 and x[0, 16, 0] > 0
    centred = preprocess_spikes(spikes, np.array([True, False, True]), 2.0, 2, causal=False)
    assert centred[0, 15, 0] == centred[0, :, 0].max() and centred[0, 14, 0] > 0
    assert np.isclose(x[0, :, 0].sum(), 1.0, atol=1e-3)  # the kernel keeps the spike count


def test_simulate_shapes_splits_and_scaling(tiny_data):
    d = tiny_data
    assert d.x.shape[:2] == (12, 40) and d.z.shape == (12, 40, 3)
    assert d.x.shape[2] == 2 * len(d.attrs["kept_neurons"])
    assert np.bincount(d.split, minlength=3).tolist() == [8, 2, 2]
    assert d.z.min() >= -2.5 and d.z.max() <= 2.5
    assert d.spikes.shape == (12, 40, 20)
    assert d.attrs["lorenz_rho"] == 28.0 and "RK4" in d.attrs["integrator"]


def test_shards_merge_to_the_unsharded_file(tmp_path):
    config = LorenzConfig(n_train=4, n_val=1, n_test=1, n_steps=20, n_neurons=10, burn_in=50,
                          min_spikes=1, seed=5)
    whole = simulate_lorenz(config)
    parts = []
    for i in range(2):
        part = simulate_lorenz(config, shard=(i, 2))
        parts.append(save_sequences(tmp_path / f"part{i}.h5", part))
    concat_h5(parts, tmp_path / "merged.h5", SEQUENCE_SCHEMA)
    merged = load_sequences(tmp_path / "merged.h5")
    np.testing.assert_array_equal(merged.x, whole.x)
    np.testing.assert_array_equal(merged.z, whole.z)
    np.testing.assert_array_equal(merged.split, whole.split)


def test_roundtrip_and_units(tmp_path, tiny_data):
    path = save_sequences(tmp_path / "d.h5", tiny_data)
    back = load_sequences(path)
    np.testing.assert_array_equal(back.x, tiny_data.x)
    np.testing.assert_array_equal(back.spikes, tiny_data.spikes)
    assert back.attrs["kept_neurons"] == tiny_data.attrs["kept_neurons"]
    with h5py.File(path) as f:
        assert f["spikes"].attrs["unit"] == "spikes/bin"


def test_any_file_with_only_x_is_accepted(tmp_path):
    path = tmp_path / "user.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.random.default_rng(0).normal(size=(10, 7, 2))
    d = load_sequences(path)
    assert d.z is None and d.obs_dim == 2
    assert d.split.tolist() == default_split(10).tolist()
    assert set(d.split.tolist()) == {0, 1, 2}


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": np.zeros((4, 5))}, "shape"),
    ({"x": np.full((4, 5, 2), np.nan)}, "NaN"),
    ({"x": np.zeros((4, 5, 2)), "z": np.zeros((4, 6, 3))}, "z must have shape"),
    ({"x": np.zeros((4, 5, 2)), "z": np.ones((4, 5, 3)) * np.inf}, "NaN"),
])
def test_bad_files_raise_one_line_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f[key] = value
    with pytest.raises(DataFormatError, match=message) as info:
        load_sequences(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_in_memory_validation(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        load_sequences(tmp_path / "nope.h5")
    with pytest.raises(DataFormatError, match="mask must have shape"):
        SequenceData(x=np.zeros((2, 5, 1)), mask=np.ones((2, 4)))


def test_standardizer_roundtrip():
    values = np.random.default_rng(1).normal(3.0, 2.0, size=(5, 50, 4)).astype(np.float32)
    norm = Standardizer.fit(values)
    z = norm.transform(values)
    np.testing.assert_allclose(z.reshape(-1, 4).mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(norm.inverse(z), values, rtol=1e-5, atol=1e-5)
    again = Standardizer.from_state(norm.state())
    np.testing.assert_array_equal(again.mean, norm.mean)


def test_reference_setting_follows_the_public_code():
    from alternators.data.reference import (
        ReferenceLorenzConfig,
        euler_lorenz,
        reference_preprocess,
        simulate_reference_lorenz,
    )

    # Euler steps of the Lorenz equations
    traj = euler_lorenz((0.0, 1.0, 1.05), 3, 0.02)
    x, y, z = traj[0]
    np.testing.assert_allclose(traj[1], traj[0] + 0.02 * np.array(
        [10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z]))
    # design matrix: row t holds the smoothed bins t-2 and t-1 (not t), zeros before the start;
    # the 6-tap kernel in 'same' alignment reaches two bins ahead
    config = ReferenceLorenzConfig(min_spikes=1)
    spikes = np.zeros((20, 2), dtype=np.uint8)
    spikes[10, 0] = spikes[3, 1] = 1
    obs, keep = reference_preprocess(spikes, config)
    assert keep.all() and obs.shape == (20, 4)
    lag1 = obs[:, 2]  # block 1 = bin t-1 of neuron 0
    assert lag1[:9].tolist() == [-1.0] * 9 and lag1[9] > -1  # bin 8 already sees the spike
    np.testing.assert_allclose(obs[1:, 0], obs[:-1, 2])  # lag 2 is lag 1 one step later
    taps = np.exp(-0.5 * ((np.arange(6) - 2.5) / 2.0) ** 2)
    taps /= taps.sum()
    smooth = np.convolve(spikes[:, 0].astype(float), taps, mode="same")
    raw = obs[:, 2]  # back from [-1, 1] to the smoothed values
    lo, hi = smooth[:-1].min(), smooth[:-1].max()
    np.testing.assert_allclose((raw[1:] + 1) / 2 * (hi - lo + 1e-6) + lo, smooth[:-1],
                               atol=1e-9)
    data = simulate_reference_lorenz(ReferenceLorenzConfig(seed=0))
    assert data.x.shape == (1, 401, 2 * len(data.attrs["kept_neurons"]))
    assert data.split.tolist() == [0] and 0.2 < data.attrs["spike_fraction"] < 0.4
    np.testing.assert_allclose(data.z[0].min(0), -1, atol=1e-5)
    np.testing.assert_allclose(data.z[0].max(0), 1, atol=1e-5)
