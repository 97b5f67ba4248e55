import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from physml_core import (
    DataFormatError,
    DatasetSpec,
    H5Appender,
    H5Reader,
    H5TorchDataset,
    Schema,
    concat_h5,
    read_h5,
    validate_file,
    write_h5,
)

SCHEMA = Schema(
    "test-showers",
    (
        DatasetSpec("energy", (None, 1), "float32", unit="GeV"),
        DatasetSpec("layer", (None, 3, 4), "float32", unit="MeV"),
        DatasetSpec("label", (None,), "int64"),
        DatasetSpec("grid", (5,), "float64", unit="m", per_row=False),
        DatasetSpec("note", (None, 2), "float32", optional=True, allow_nonfinite=True),
    ),
    required_attrs=("creator",),
)


def arrays(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "energy": rng.uniform(1, 100, (n, 1)).astype(np.float32),
        "layer": rng.random((n, 3, 4)).astype(np.float32),
        "label": np.arange(n),
        "grid": np.linspace(0, 1, 5),
    }


def test_write_read_round_trip_with_units_and_attrs(tmp_path):
    path = write_h5(tmp_path / "a.h5", SCHEMA, arrays(), attrs={"creator": "test", "cfg": {"a": 1}})
    data = read_h5(path, SCHEMA)
    np.testing.assert_array_equal(data["layer"], arrays()["layer"])
    assert "note" not in data
    with H5Reader(path, SCHEMA) as reader:
        assert len(reader) == 10
        assert reader.attrs["creator"] == "test" and reader.attrs["cfg"] == {"a": 1}
        assert reader.attrs["physml_schema"] == "test-showers"
        assert reader.dataset_attrs("energy")["unit"] == "GeV"
        batches = list(reader.iter_batches(4, keys=["label"]))
        assert [len(b["label"]) for b in batches] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]), np.arange(10))
    assert not list(tmp_path.glob(".*tmp"))


def test_appender_streams_and_is_atomic(tmp_path):
    path = tmp_path / "big.h5"
    with H5Appender(path, SCHEMA, attrs={"creator": "t"}, chunk_rows=8) as out:
        out.write("grid", np.zeros(5))
        for i in range(5):
            part = arrays(7, seed=i)
            del part["grid"]
            out.append(part)
            assert not path.exists()  # only renamed on success
    assert validate_file(path, SCHEMA) == 35
    with h5py.File(path) as handle:
        assert handle["layer"].chunks[0] == 8 and handle["layer"].compression == "gzip"
        assert handle["layer"].maxshape[0] is None


def test_appender_failure_leaves_previous_file_untouched(tmp_path):
    path = write_h5(tmp_path / "keep.h5", SCHEMA, arrays(), attrs={"creator": "x"})
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with H5Appender(path, SCHEMA) as out:
            part = arrays(3)
            del part["grid"]
            out.append(part)
            raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]


def test_appender_missing_static_dataset_is_refused(tmp_path):
    with pytest.raises(DataFormatError, match="nothing was written to dataset 'grid'"):
        with H5Appender(tmp_path / "x.h5", SCHEMA) as out:
            part = arrays(3)
            del part["grid"]
            out.append(part)
    assert not (tmp_path / "x.h5").exists()


def test_appender_rejects_bad_batches(tmp_path):
    with H5Appender(tmp_path / "x.h5", SCHEMA) as out:
        out.write("grid", np.zeros(5))
        part = arrays(3)
        del part["grid"]
        with pytest.raises(DataFormatError, match="misses"):
            out.append({"energy": part["energy"]})
        bad = dict(part, layer=np.zeros((3, 4, 4), np.float32))
        with pytest.raises(DataFormatError, match=r"'layer' has shape \(3, 4, 4\), expected \(N, 3, 4\)"):
            out.append(bad)
        with pytest.raises(DataFormatError, match="disagree"):
            out.append(dict(part, label=np.arange(2)))
        out.append(part)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda a: a.pop("layer"), "missing dataset 'layer'"),
        (lambda a: a.__setitem__("layer", np.zeros((10, 3, 5), np.float32)),
         r"shape \(10, 3, 5\), expected \(N, 3, 4\)"),
        (lambda a: a.__setitem__("energy", np.full((10, 1), np.nan, np.float32)), "NaN/inf"),
        (lambda a: a.__setitem__("label", np.zeros(10, dtype="S3")), "dtype"),
    ],
)
def test_write_refuses_bad_arrays(tmp_path, mutate, match):
    data = arrays()
    mutate(data)
    with pytest.raises(DataFormatError, match=match):
        write_h5(tmp_path / "bad.h5", SCHEMA, data, attrs={"creator": "x"})
    assert not (tmp_path / "bad.h5").exists()


def _raw(path, **overrides):
    data = arrays()
    data.update(overrides)
    with h5py.File(path, "w") as handle:
        handle.attrs["creator"] = "someone"
        for key, value in data.items():
            if value is not None:
                handle.create_dataset(key, data=value)
    return path


def test_read_validation_errors_name_file_key_and_expectation(tmp_path):
    path = _raw(tmp_path / "m.h5", layer=None)
    with pytest.raises(DataFormatError, match=r"m\.h5: missing dataset 'layer'.*\(N, 3, 4\)"):
        read_h5(path, SCHEMA)
    path = _raw(tmp_path / "s.h5", layer=np.zeros((10, 4, 3), np.float32))
    with pytest.raises(DataFormatError, match=r"s\.h5: dataset 'layer' has shape \(10, 4, 3\)"):
        H5Reader(path, SCHEMA)
    path = _raw(tmp_path / "d.h5", energy=np.array([[b"a"]] * 10))
    with pytest.raises(DataFormatError, match="'energy' has dtype"):
        H5Reader(path, SCHEMA)
    bad = arrays()["energy"]
    bad[6, 0] = np.inf
    path = _raw(tmp_path / "n.h5", energy=bad)
    with H5Reader(path, SCHEMA) as reader:  # structure is fine, values are checked on read
        reader.read("energy", 0, 5)
        with pytest.raises(DataFormatError, match=r"'energy' contains NaN/inf \(first at index \(6, 0\)\)"):
            reader.read("energy", 5, 10)
    with pytest.raises(DataFormatError, match="NaN/inf"):
        validate_file(path, SCHEMA)
    path = _raw(tmp_path / "r.h5", label=np.arange(9))
    with pytest.raises(DataFormatError, match="disagree on the number of rows"):
        H5Reader(path, SCHEMA)
    with h5py.File(tmp_path / "noattr.h5", "w") as handle:
        for key, value in arrays().items():
            handle.create_dataset(key, data=value)
    with pytest.raises(DataFormatError, match="missing file attribute 'creator'"):
        H5Reader(tmp_path / "noattr.h5", SCHEMA)


def test_int_and_float64_source_data_are_converted(tmp_path):
    path = _raw(tmp_path / "f64.h5", energy=np.ones((10, 1), np.float64))
    data = read_h5(path, SCHEMA, keys=["energy"])
    assert data["energy"].dtype == np.float32


def test_not_hdf5_missing_and_folder(tmp_path):
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        read_h5(tmp_path / "text.h5", SCHEMA)
    with pytest.raises(DataFormatError, match="no such file"):
        read_h5(tmp_path / "nope.h5", SCHEMA)
    with pytest.raises(DataFormatError, match="is a folder"):
        read_h5(tmp_path, SCHEMA)
    good = write_h5(tmp_path / "t.h5", SCHEMA, arrays(200), attrs={"creator": "x"})
    truncated = tmp_path / "trunc.h5"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(DataFormatError):
        validate_file(truncated, SCHEMA)


def test_concat_shards(tmp_path):
    paths = []
    for i in range(3):
        paths.append(write_h5(tmp_path / f"s{i}.h5", SCHEMA, arrays(4 + i, seed=i),
                              attrs={"creator": "x", "shard": i}))
    rows = concat_h5(paths, tmp_path / "all.h5", SCHEMA, batch_size=2, attrs={"shard": "all"})
    assert rows == 4 + 5 + 6
    data = read_h5(tmp_path / "all.h5", SCHEMA)
    np.testing.assert_array_equal(data["label"], np.concatenate([np.arange(n) for n in (4, 5, 6)]))
    with H5Reader(tmp_path / "all.h5", SCHEMA) as reader:
        assert reader.attrs["shard"] == "all" and reader.attrs["creator"] == "x"
    other = arrays(3)
    other["grid"] = np.ones(5)
    odd = write_h5(tmp_path / "odd.h5", SCHEMA, other, attrs={"creator": "x"})
    with pytest.raises(DataFormatError, match="'grid' differs"):
        concat_h5([paths[0], odd], tmp_path / "no.h5", SCHEMA)
    assert not (tmp_path / "no.h5").exists()


def test_torch_dataset_reads_batches_from_disk(tmp_path):
    path = write_h5(tmp_path / "t.h5", SCHEMA, arrays(50), attrs={"creator": "x"})
    dataset = H5TorchDataset(path, SCHEMA, keys=["energy", "label"])
    assert len(dataset) == 50
    item = dataset[3]
    assert item["label"].item() == 3 and item["energy"].shape == (1,)
    loader = DataLoader(dataset, batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    seen = torch.cat([batch["label"] for batch in loader])
    assert sorted(seen.tolist()) == list(range(50))
    batch = dataset.__getitems__([5, 1, 5])
    assert [b["label"].item() for b in batch] == [5, 1, 5]
    with pytest.raises(IndexError):
        dataset[50]


def test_torch_dataset_with_workers(tmp_path):
    path = write_h5(tmp_path / "t.h5", SCHEMA, arrays(20), attrs={"creator": "x"})
    loader = DataLoader(H5TorchDataset(path, SCHEMA, keys=["label"]), batch_size=5, num_workers=2)
    assert sorted(torch.cat([b["label"] for b in loader]).tolist()) == list(range(20))


def test_schema_definition_errors():
    with pytest.raises(ValueError, match="free first axis"):
        DatasetSpec("x", (3, 4))
    with pytest.raises(ValueError, match="duplicate"):
        Schema("s", (DatasetSpec("x", (None,)), DatasetSpec("x", (None,))))
