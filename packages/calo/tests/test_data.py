from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from calo.data import (
    CALO_SCHEMA,
    count_showers,
    fetch,
    iter_showers,
    read_showers,
    validate_showers,
    write_showers,
)
from physml_core.errors import DataFormatError


def _public_style_file(path, n=40):
    """A file laid out like the public eplus.hdf5 (plain h5py, no physml attributes)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["energy"] = rng.uniform(1, 100, (n, 1)).astype(np.float32)
        f["layer_0"] = rng.exponential(1.0, (n, 3, 96)).astype(np.float32)
        f["layer_1"] = rng.exponential(1.0, (n, 12, 12)).astype(np.float32)
        f["layer_2"] = rng.exponential(1.0, (n, 12, 6)).astype(np.float32)
        f["overflow"] = rng.exponential(1.0, (n, 3)).astype(np.float32)


def test_public_layout_loads_unchanged_and_streams(tmp_path):
    path = tmp_path / "eplus.hdf5"
    _public_style_file(path)
    data = read_showers(path)
    assert data["layer_0"].shape == (40, 3, 96) and data["energy"].shape == (40, 1)
    assert count_showers(path) == validate_showers(path) == 40
    batches = list(iter_showers(path, batch_size=16))
    assert [len(b["energy"]) for b in batches] == [16, 16, 8]
    np.testing.assert_array_equal(np.concatenate([b["layer_1"] for b in batches]),
                                  data["layer_1"])


def test_roundtrip_with_units(tmp_path, showers):
    subset = {k: v[:20] for k, v in showers.items()}
    write_showers(tmp_path / "s.h5", subset)
    back = read_showers(tmp_path / "s.h5")
    for key in subset:
        np.testing.assert_array_equal(back[key], subset[key])
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["energy"].attrs["unit"] == "GeV"
        assert f["layer_2"].attrs["unit"] == "MeV"
    assert CALO_SCHEMA["layer_1"].shape == (None, 12, 12)


def test_wrong_shape_names_key_and_shapes(tmp_path):
    path = tmp_path / "bad.h5"
    _public_style_file(path)
    with h5py.File(path, "a") as f:
        del f["layer_1"]
        f["layer_1"] = np.zeros((40, 12, 11), np.float32)
    with pytest.raises(DataFormatError, match=r"layer_1.*\(40, 12, 11\).*\(N, 12, 12\)"):
        read_showers(path)


def test_missing_key_not_hdf5_and_negative_energy(tmp_path):
    path = tmp_path / "missing.h5"
    with h5py.File(path, "w") as f:
        f["energy"] = np.ones((3, 1), np.float32)
    with pytest.raises(DataFormatError, match="layer_0"):
        read_showers(path)
    text = tmp_path / "notes.txt"
    text.write_text("not hdf5")
    with pytest.raises(DataFormatError, match="not an HDF5"):
        read_showers(text)
    neg = tmp_path / "neg.h5"
    _public_style_file(neg)
    with h5py.File(neg, "a") as f:
        f["energy"][0, 0] = -5.0
    with pytest.raises(DataFormatError, match="non-positive"):
        read_showers(neg)


def test_fetch_verifies_checksum(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"calorimeter" * 100)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    dest = fetch(source.as_uri(), tmp_path / "local.bin", digest)
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(DataFormatError, match="checksum mismatch"):
        fetch(source.as_uri(), tmp_path / "other.bin", "0" * 64)
    assert not (tmp_path / "other.bin").exists()
    with pytest.raises(ValueError):
        fetch(source.as_uri(), tmp_path / "x.bin", "abc")
