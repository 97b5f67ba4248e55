"""Bring your own data: .npy / .npz / CSV import, NaN -> per-feature masks, padding, errors."""

from __future__ import annotations

import numpy as np
import pytest

from alternators.data import load_sequences, save_sequences
from alternators.data.importing import ImportConfig, import_sequences
from physml_core.errors import DataFormatError


def _with_gaps(seed=0, shape=(3, 8, 4)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(np.float32)
    x[rng.random(shape) < 0.2] = np.nan
    x[1, 5] = np.nan  # a step with nothing observed
    return x


def test_import_round_trips_nan_masks(tmp_path):
    x = _with_gaps()
    np.save(tmp_path / "x.npy", x)
    data = import_sequences(ImportConfig(path=str(tmp_path / "x.npy")))
    np.testing.assert_array_equal(data.mask, ~np.isnan(x))
    save_sequences(tmp_path / "x.h5", data)
    back = load_sequences(tmp_path / "x.h5")
    np.testing.assert_array_equal(back.mask, ~np.isnan(x))
    restored = np.where(back.mask, back.x, np.nan)
    np.testing.assert_array_equal(np.isnan(restored), np.isnan(x))
    np.testing.assert_allclose(restored[back.mask], x[~np.isnan(x)])


def test_npz_with_latents_and_with_one_array_per_sequence(tmp_path):
    x = _with_gaps()
    z = np.ones((3, 8, 2), dtype=np.float32)
    z[0, 2, 1] = np.nan
    np.savez(tmp_path / "a.npz", x=x, z=z, split=np.array([0, 1, 2]))
    data = import_sequences(ImportConfig(path=str(tmp_path / "a.npz")))
    assert data.split.tolist() == [0, 1, 2]
    assert not data.z_mask[0, 2, 1] and data.z_mask.sum() == z.size - 1
    np.savez(tmp_path / "b.npz", first=np.ones((5, 2)), second=np.full((3, 2), 2.0))
    data = import_sequences(ImportConfig(path=str(tmp_path / "b.npz")))
    assert data.x.shape == (2, 5, 2) and data.lengths.tolist() == [5, 3]
    assert data.mask[1, :3].all() and not data.mask[1, 3:].any()


def test_long_csv_groups_orders_and_pads(tmp_path):
    text = "id,t,f1,f2\nb,1,1,2\na,0,5,\nb,0,3,4\na,1,6,7\na,2,8,9\n"
    (tmp_path / "d.csv").write_text(text)
    data = import_sequences(ImportConfig(path=str(tmp_path / "d.csv"), id_column="id",
                                         time_column="t"))
    assert data.attrs["sequence_ids"] == ["b", "a"]
    np.testing.assert_allclose(data.x[0, :2], [[3, 4], [1, 2]])  # ordered by time
    assert data.lengths.tolist() == [2, 3]
    assert not data.mask[1, 0, 1] and data.mask[1, 0, 0] and not data.mask[0, 2].any()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("r.csv", "sequence,a\n0,x\n", "not a number"),
    ("d.csv", "sequence,t,a\n0,1,1\n0,1,2\n", "repeated time"),
    ("e.csv", "", "header"),
    ("f.txt", "1,2\n", "suffix"),
])
def test_bad_files_give_one_line_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    config = ImportConfig(path=str(tmp_path / name), time_column="t" if "t," in content else "")
    with pytest.raises(DataFormatError, match=message) as info:
        import_sequences(config)
    assert "\n" not in str(info.value)


def test_masks_reach_training_and_inference(tmp_path):
    """A model trained on data with NaN gaps gives finite losses and fills the gaps."""
    import torch

    from alternators.artifacts import load_model
    from alternators.inference import predict
    from alternators.models import ModelConfig
    from alternators.train import TrainConfig, train

    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(10, 20, 3)), 1).astype(np.float32)
    z = x[..., :2] * 0.5
    x[rng.random(x.shape) < 0.25] = np.nan
    np.savez(tmp_path / "g.npz", x=x, z=z)
    data = import_sequences(ImportConfig(path=str(tmp_path / "g.npz")))
    save_sequences(tmp_path / "g.h5", data)
    torch.manual_seed(0)
    result = train(TrainConfig(data=str(tmp_path / "g.h5"), run_dir=str(tmp_path / "run"),
                               model=ModelConfig(hidden=8, layers=1), epochs=2, batch_size=4,
                               tensorboard=False))
    assert np.isfinite(result.metrics["train/loss"])
    pred = predict(load_model(result.checkpoint), x, n_samples=2)
    assert np.isfinite(pred.x_samples).all()
    observed = ~np.isnan(x)
    np.testing.assert_allclose(pred.x_samples[:, 0][observed], x[observed])
