"""HDF5 format, lazy reads and the converter for the public .npy arrays."""

from __future__ import annotations

import numpy as np
import pytest

from clarm.data import (
    PhaseSpaceFile,
    check_images,
    check_resolution,
    convert_npy,
    downsample,
)
from physml_core.errors import DataFormatError


def _npy(tmp_path, runs=3, modules=4, h=64, nan=False):
    rng = np.random.default_rng(0)
    images = rng.random((runs, modules, 15, h, h)).astype(np.float32)
    if nan:
        images[1, 2, 3, 4, 5] = np.nan
    path = tmp_path / "images.npy"
    np.save(path, images)
    labels = rng.random((runs, 6)).astype(np.float32)
    np.save(tmp_path / "labels.npy", labels)
    return path, images, labels


def test_convert_streams_and_downsamples(tmp_path):
    path, images, labels = _npy(tmp_path)
    out = convert_npy(path, tmp_path / "out.h5", labels_npy=tmp_path / "labels.npy",
                      resolution=32, batch_runs=2, energies_MeV=[5, 20, 40, 80])
    with PhaseSpaceFile(out) as f:
        assert (f.runs, f.modules, f.resolution) == (3, 4, 32)
        got = f.images([2, 0])
        np.testing.assert_allclose(got, downsample(images[[2, 0]], 32), rtol=1e-5)
        # block sums preserve the total of every image
        np.testing.assert_allclose(got.sum(axis=(-1, -2)), images[[2, 0]].sum(axis=(-1, -2)),
                                   rtol=1e-4)
        np.testing.assert_allclose(f.images(slice(1, 2), module=3)[0],
                                   downsample(images[1, 3], 32), rtol=1e-5)
        np.testing.assert_allclose(f.settings(), labels)
        np.testing.assert_allclose(f.energy_MeV()[1], [5, 20, 40, 80])
        np.testing.assert_array_equal(f.run_index(), [0, 1, 2])
        with pytest.raises(ValueError, match="module index"):
            f.images([0], module=4)
        with pytest.raises(ValueError, match="run index"):
            f.images([7])


def test_file_is_chunked_per_run_and_module(tiny_h5):
    import h5py

    with h5py.File(tiny_h5) as handle:
        assert handle["images"].chunks == (1, 1, 15, 32, 32)
        assert handle["energy_MeV"].attrs["unit"] == "MeV"
    with PhaseSpaceFile(tiny_h5) as f:
        names = f.attrs["projection_names"]
        assert len(names) == 15 and names[1] == "x-y" and names[11] == "dW-phi"
        assert len(f.attrs["coordinate_ranges"]) == 6


def test_converter_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 14, 32, 32), np.float32))
    with pytest.raises(DataFormatError, match="15"):
        convert_npy(bad, tmp_path / "x.h5")
    path, _, _ = _npy(tmp_path, nan=True)
    with pytest.raises(DataFormatError, match="NaN"):
        convert_npy(path, tmp_path / "y.h5")
    assert not (tmp_path / "y.h5").exists()
    path, _, _ = _npy(tmp_path, h=48)
    with pytest.raises(ValueError, match="power of two"):
        convert_npy(path, tmp_path / "z.h5")
    notnpy = tmp_path / "junk.npy"
    notnpy.write_bytes(b"not numpy")
    with pytest.raises(DataFormatError):
        convert_npy(notnpy, tmp_path / "w.h5")


def test_reader_rejects_other_files(tmp_path):
    with pytest.raises(DataFormatError):
        PhaseSpaceFile(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(DataFormatError):
        PhaseSpaceFile(text)


def test_checks():
    assert check_resolution(256) == 256
    for bad in (16, 48, 512):
        with pytest.raises(ValueError):
            check_resolution(bad)
    with pytest.raises(DataFormatError, match="shape"):
        check_images(np.zeros((2, 14, 32, 32)))
    with pytest.raises(DataFormatError, match="NaN"):
        check_images(np.full((1, 15, 32, 32), np.nan))
    with pytest.raises(DataFormatError, match="32x32"):
        check_images(np.zeros((1, 15, 64, 64)), resolution=32)


def _zenodo_tree(root, rng):
    """A small tree in the public layout: images/ and labels/, three files, the last the
    official test split (the reference code tests on the third file)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    arrays = {}
    for name, runs in (("train_part1.npy", 3), ("train_part2.npy", 2), ("test.npy", 2)):
        images = rng.random((runs, 4, 15, 64, 64)).astype(np.float32)
        labels = rng.random((runs, 10)).astype(np.float32)
        np.save(root / "images" / name, images)
        np.save(root / "labels" / name, labels)
        arrays[name] = (images, labels)
    return arrays


def test_import_zenodo_keeps_the_official_split(tmp_path):
    from clarm.data import downsample, held_out_runs, import_zenodo, train_splits

    arrays = _zenodo_tree(tmp_path / "zenodo", np.random.default_rng(0))
    out = import_zenodo(tmp_path / "zenodo", tmp_path / "z.h5", resolution=32)
    order = ["test.npy", "train_part1.npy", "train_part2.npy"]  # sorted names
    with PhaseSpaceFile(out) as f:
        assert f.runs == 7 and f.modules == 4 and f.resolution == 32
        np.testing.assert_array_equal(f.run_index(), np.arange(7))  # global run numbers
        assert f.attrs["test_file"] == "train_part2.npy"  # the last in sorted order
        np.testing.assert_array_equal(f.split(), [0, 0, 0, 0, 0, 1, 1])
        np.testing.assert_allclose(f.images([0]), downsample(arrays[order[0]][0][:1], 32),
                                   rtol=1e-6)
        np.testing.assert_allclose(f.settings()[2:5], arrays["train_part1.npy"][1])
        assert f.attrs["projection_names"][11] == "z-pz"
        train, val = train_splits(f, 0.25)  # the last of the non-test runs is held out
        np.testing.assert_array_equal(train, [0, 1, 2, 3])
        np.testing.assert_array_equal(val, [4])

        class _Fake:  # a CVAE trained on this file
            dataset_id = f.attrs["dataset_id"]
            train_runs, val_runs = train, val
            train_run_numbers = f.run_index()[train]

        np.testing.assert_array_equal(held_out_runs(_Fake, f), [5, 6])
    chosen = import_zenodo(tmp_path / "zenodo", tmp_path / "z2.h5", test_file="test.npy")
    with PhaseSpaceFile(chosen) as f:
        np.testing.assert_array_equal(f.split(), [1, 1, 0, 0, 0, 0, 0])


def test_import_zenodo_cli_and_errors(tmp_path):
    from click.testing import CliRunner

    from clarm.cli import cli

    _zenodo_tree(tmp_path / "zenodo", np.random.default_rng(1))
    runner = CliRunner()
    res = runner.invoke(cli, ["import-zenodo", str(tmp_path / "zenodo"), "--resolution", "32",
                              "-o", str(tmp_path / "z.h5")])
    assert res.exit_code == 0, res.output
    assert "7 runs (2 official test)" in res.output
    (tmp_path / "bad").mkdir()
    res = runner.invoke(cli, ["import-zenodo", str(tmp_path / "bad"), "-o",
                              str(tmp_path / "b.h5")])
    assert res.exit_code == 2 and "images/ and labels/" in res.output


def test_synthetic_file_streams_through_cvae_training(tmp_path):
    """One epoch over a synthetic file, reading 2 runs at a time."""
    from clarm.artifacts import load_cvae
    from clarm.synthetic import write_synthetic
    from clarm.train import CVAETrainConfig, train_cvae

    path = write_synthetic(tmp_path / "syn.h5", runs=6, modules=3, resolution=32, test_runs=1)
    with PhaseSpaceFile(path) as f:
        assert f.runs == 6 and f.images([0]).shape == (1, 3, 15, 32, 32)
        np.testing.assert_allclose(f.images([0]).sum(axis=(-1, -2)), 1.0, rtol=1e-4)
        np.testing.assert_array_equal(f.split(), [0, 0, 0, 0, 0, 1])
    result = train_cvae(CVAETrainConfig(data=str(path), run_dir=str(tmp_path / "cvae"),
                                         epochs=1, block_runs=2, batch_size=4,
                                         base_filters=4, device="cpu", val_fraction=0.2))
    cvae = load_cvae(result.run_dir)
    assert 5 not in cvae.train_runs and 5 not in cvae.val_runs  # the test run stays out
    assert cvae.latents_min is not None


def test_split_runs_holds_out_the_last_runs():
    """clarm's train/validation split is physml's held-out rule: the last runs, no seed."""
    from clarm.data import split_runs
    from physml_core.split import holdout_counts

    for n, frac in ((96, 0.15), (6, 0.34), (5, 0.2), (2, 0.01)):
        train, val = split_runs(n, frac)
        n_train, n_val, _ = holdout_counts(n, frac)
        np.testing.assert_array_equal(train, np.arange(n_train))
        np.testing.assert_array_equal(val, np.arange(n_train, n))
        assert len(val) == n_val >= 1 and train.dtype == val.dtype == np.int64
    np.testing.assert_array_equal(split_runs(96, 0.15)[1], np.arange(82, 96))  # 82 / 14
    with pytest.raises(ValueError):
        split_runs(1, 0.5)
    with pytest.raises(ValueError):
        split_runs(2, 0.9)  # nothing left to train on


def _numbered_file(path, run_numbers, dataset_id="sim:shards"):
    """A tiny phase-space file whose runs carry the given global run numbers."""
    from clarm.data import NUM_PROJECTIONS, PHASE_SPACE_SCHEMA
    from physml_core.hdf5 import H5Appender

    attrs = {"modules": 2, "resolution": 32, "dataset_id": dataset_id,
             "projection_names": [f"c{c}" for c in range(NUM_PROJECTIONS)]}
    with H5Appender(path, PHASE_SPACE_SCHEMA, attrs=attrs, chunk_rows=1) as out:
        out.append({"images": np.full((len(run_numbers), 2, NUM_PROJECTIONS, 32, 32), 1 / 1024,
                                      np.float32),
                    "run_index": np.asarray(run_numbers, dtype=np.int64)})
    return path


def test_held_out_runs_match_by_run_number_across_shards(tmp_path):
    """A model trained on shard 2/2 (runs 4..7 at positions 0..3) finds its training runs by
    run number in the merged file (runs 0..7) and in its own shard; another simulation's
    file is all held out."""
    from clarm.data import held_out_runs, trained_runs_in

    class _TrainedOnShard:
        dataset_id = "sim:shards"
        train_runs, val_runs = np.array([0, 1, 2]), np.array([3])  # positions in the shard
        train_run_numbers = np.array([4, 5, 6])

    shard = _numbered_file(tmp_path / "shard1.h5", [4, 5, 6, 7])
    merged = _numbered_file(tmp_path / "merged.h5", list(range(8)))
    other = _numbered_file(tmp_path / "other.h5", list(range(8)), dataset_id="sim:other")
    with PhaseSpaceFile(shard) as f:
        np.testing.assert_array_equal(trained_runs_in(_TrainedOnShard, f), [0, 1, 2])
        np.testing.assert_array_equal(held_out_runs(_TrainedOnShard, f), [3])
    with PhaseSpaceFile(merged) as f:
        np.testing.assert_array_equal(trained_runs_in(_TrainedOnShard, f), [4, 5, 6])
        np.testing.assert_array_equal(held_out_runs(_TrainedOnShard, f), [0, 1, 2, 3, 7])
    with PhaseSpaceFile(other) as f:
        assert trained_runs_in(_TrainedOnShard, f).size == 0
        np.testing.assert_array_equal(held_out_runs(_TrainedOnShard, f), np.arange(8))
