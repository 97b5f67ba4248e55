"""Provenance records and the held-out rule."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import physml_core
from physml_core.hdf5 import DatasetSpec, H5Reader, Schema, write_h5
from physml_core.provenance import (
    Provenance,
    ProvenanceOverlapError,
    check_disjoint,
    from_attrs,
    overlapping,
    select_rows,
    to_attrs,
)


def _p(start: int, stop: int, seed: int | None = 1, setting: str = "eplus") -> Provenance:
    return Provenance("sim", seed, setting, start, stop)


def test_overlap_needs_same_stream_and_intersecting_rows() -> None:
    assert _p(0, 10).overlaps(_p(9, 20))
    assert not _p(0, 10).overlaps(_p(10, 20))  # half-open ranges
    assert not _p(0, 10).overlaps(_p(0, 10, seed=2))
    assert not _p(0, 10).overlaps(_p(0, 10, setting="gamma"))
    assert not _p(0, 10).overlaps(_p(5, 5))  # empty range
    assert _p(0, 10, seed=None).overlaps(_p(3, 4, seed=None))
    assert len(overlapping([_p(0, 10), _p(50, 60)], [_p(55, 70), _p(100, 200)])) == 1


def test_invalid_provenance_raises_value_error() -> None:
    with pytest.raises(ValueError):
        Provenance("sim", 1, "x", 5, 4)
    with pytest.raises(ValueError):
        Provenance("", 1, "x", 0, 4)


def test_select_rows_maps_file_rows_to_stream_rows() -> None:
    merged = [_p(100, 110), _p(0, 5, seed=2)]  # a merged file: 10 rows then 5 rows
    assert select_rows(merged, 8, 12) == [_p(108, 110), _p(0, 2, seed=2)]
    assert select_rows(merged, 0, 3) == [_p(100, 103)]
    with pytest.raises(ValueError):
        select_rows(merged, 0, 16)


def test_check_disjoint_raises_one_line_error() -> None:
    check_disjoint([_p(0, 100)], [_p(100, 200)])
    with pytest.raises(ProvenanceOverlapError) as info:
        check_disjoint([_p(0, 100)], [_p(50, 200)], "heldout.h5")
    message = str(info.value)
    assert "\n" not in message and "heldout.h5" in message and "50:100" in message
    assert isinstance(info.value, ValueError)
    assert physml_core.check_disjoint is check_disjoint


def test_attrs_round_trip_through_hdf5(tmp_path) -> None:
    schema = Schema("t", (DatasetSpec("x", (None, 1)),))
    provs = [_p(0, 4, seed=None)]
    path = write_h5(tmp_path / "f.h5", schema, {"x": np.zeros((4, 1), np.float32)},
                    attrs=to_attrs(provs))
    with H5Reader(path, schema) as reader:
        assert from_attrs(reader.attrs) == provs
    with h5py.File(path) as handle:
        assert int(handle.attrs["provenance_seed"]) == -1
        assert list(handle.attrs["provenance_rows"]) == [0, 4]
    assert from_attrs({}) is None


def test_merged_attrs_join_contiguous_ranges_and_clear_without_provenance():
    from physml_core.provenance import ATTR_KEYS, Provenance, from_attrs, merged_attrs

    a = [Provenance("sim", 1, "e+", 0, 10, "0/2")]
    b = [Provenance("sim", 1, "e+", 10, 20, "1/2")]
    c = [Provenance("sim", 2, "e+", 0, 5, "0/1")]
    attrs = merged_attrs([a, b, c])
    assert from_attrs(attrs) == [Provenance("sim", 1, "e+", 0, 20, "merged"), c[0]]
    assert set(ATTR_KEYS) <= set(attrs) and attrs["provenance_source"] is None
    single = merged_attrs([a, b])
    assert single["provenance_rows"] == [0, 20] and single["provenance_shard"] == "merged"
    none = merged_attrs([a, None])
    assert from_attrs(none) is None and all(none[k] is None for k in ATTR_KEYS)
