"""Schema-validated HDF5 files: atomic writes, streaming appends, lazy validated reads.

A :class:`Schema` lists the datasets a file must hold.  Each :class:`DatasetSpec` gives the full
shape with ``None`` for free axes (the first axis is usually the sample axis), the dtype, the
physical unit (stored as the dataset attribute ``unit``) and whether NaN/inf are allowed.

Every validation failure raises :class:`~physml_core.errors.DataFormatError` whose message names
the file, the dataset key, and what was expected versus found.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from .atomic import atomic_path
from .errors import DataFormatError

__all__ = [
    "DatasetSpec",
    "H5Appender",
    "H5Reader",
    "H5TorchDataset",
    "Schema",
    "atomic_path",
    "concat_h5",
    "read_h5",
    "validate_file",
    "write_h5",
]

SCHEMA_ATTR = "physml_schema"


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a :class:`Schema`.

    Attributes
    ----------
    name: key in the file.
    shape: full shape; ``None`` marks a free axis, e.g. ``(None, 3, 96)``.
    dtype: stored dtype; reads convert to it, writes cast to it.
    unit: physical unit, written as the dataset attribute ``unit`` ("" for dimensionless).
    allow_nonfinite: whether NaN/inf values are legal.
    per_row: the first axis is the sample axis shared with the other per-row datasets
        (appended to by :class:`H5Appender`, concatenated by :func:`concat_h5`).
    optional: a file may omit it.
    chunks: chunk shape, ``None`` entries meaning "the full axis"; default: automatic.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    unit: str = ""
    allow_nonfinite: bool = False
    per_row: bool = True
    optional: bool = False
    chunks: tuple[int | None, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.shape:
            raise ValueError(f"DatasetSpec {self.name!r}: shape must have at least one axis")
        if self.per_row and self.shape[0] is not None:
            raise ValueError(f"DatasetSpec {self.name!r}: a per-row dataset needs a free first axis")
        if self.chunks is not None and len(self.chunks) != len(self.shape):
            raise ValueError(f"DatasetSpec {self.name!r}: chunks must have {len(self.shape)} axes")

    def shape_str(self) -> str:
        """Shape for messages: the first free axis is ``N``, later free axes ``*``."""
        return "(" + ", ".join(
            ("N" if i == 0 else "*") if d is None else str(d) for i, d in enumerate(self.shape)
        ) + ")"

    def matches(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.shape) and all(
            want is None or want == got for want, got in zip(self.shape, shape, strict=True)
        )


@dataclass(frozen=True)
class Schema:
    """The datasets (and required file attributes) of one file format."""

    name: str
    datasets: tuple[DatasetSpec, ...]
    required_attrs: tuple[str, ...] = ()
    description: str = ""
    _by_name: dict[str, DatasetSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {spec.name: spec for spec in self.datasets}
        if len(by_name) != len(self.datasets):
            raise ValueError(f"Schema {self.name!r}: duplicate dataset names")
        object.__setattr__(self, "_by_name", by_name)

    def __getitem__(self, key: str) -> DatasetSpec:
        try:
            return self._by_name[key]
        except KeyError:
            raise KeyError(f"schema {self.name!r} has no dataset {key!r}") from None

    def __contains__(self, key: object) -> bool:
        return key in self._by_name

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def row_keys(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.datasets if s.per_row)


# --------------------------------------------------------------------------- validation helpers

def _dtype_kind(dtype: np.dtype) -> str:
    kind = np.dtype(dtype).kind
    return {"u": "i"}.get(kind, kind)


def _check_shape(path: Path | str, spec: DatasetSpec, shape: Sequence[int], what: str) -> None:
    if not spec.matches(shape):
        raise DataFormatError(
            f"{path}: dataset '{spec.name}' has shape {tuple(shape)}, expected "
            f"{spec.shape_str()}{what}"
        )


def _check_dtype(path: Path | str, spec: DatasetSpec, dtype: np.dtype, what: str) -> None:
    want, got = _dtype_kind(np.dtype(spec.dtype)), _dtype_kind(dtype)
    if want != got and not (want == "f" and got == "i"):
        raise DataFormatError(
            f"{path}: dataset '{spec.name}' has dtype {dtype}, expected {spec.dtype}{what}"
        )


def _check_finite(path: Path | str, spec: DatasetSpec, array: np.ndarray, what: str = "",
                  row_offset: int = 0) -> None:
    if spec.allow_nonfinite or array.dtype.kind not in "fc" or not array.size:
        return
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        if bad.size:
            bad[0] += row_offset
        raise DataFormatError(
            f"{path}: dataset '{spec.name}' contains NaN/inf (first at index "
            f"{tuple(int(i) for i in bad)}){what}; clean or regenerate the data"
        )


def _check_array(path: Path | str, spec: DatasetSpec, array: np.ndarray, what: str) -> None:
    _check_shape(path, spec, array.shape, what)
    _check_dtype(path, spec, array.dtype, what)
    _check_finite(path, spec, array, what)


def _encode_attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) and not _is_numeric_sequence(value):
        return "json:" + json.dumps(value)
    if isinstance(value, Path):
        return str(value)
    if value is None:
        return "json:null"
    return value


def _is_numeric_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value
    )


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str) and value.startswith("json:"):
        return json.loads(value[5:])
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: no such file")
    if path.is_dir():
        raise DataFormatError(f"{path}: is a folder, expected an HDF5 file")
    if not h5py.is_hdf5(path):
        raise DataFormatError(f"{path}: not an HDF5 file (wrong format or truncated)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot be opened as HDF5 ({exc})") from None


def _check_structure(path: Path, handle: h5py.File, schema: Schema, keys: Sequence[str]) -> None:
    for key in keys:
        spec = schema[key]
        if key not in handle:
            if spec.optional:
                continue
            present = sorted(handle.keys())
            raise DataFormatError(
                f"{path}: missing dataset '{key}' (schema {schema.name}, expected shape "
                f"{spec.shape_str()}); the file has {present}"
            )
        node = handle[key]
        if not isinstance(node, h5py.Dataset):
            raise DataFormatError(f"{path}: '{key}' is a group, expected a dataset")
        _check_shape(path, spec, node.shape, f" (schema {schema.name})")
        _check_dtype(path, spec, node.dtype, "")
    rows = {k: handle[k].shape[0] for k in keys if schema[k].per_row and k in handle}
    if len(set(rows.values())) > 1:
        raise DataFormatError(f"{path}: per-row datasets disagree on the number of rows: {rows}")
    for attr in schema.required_attrs:
        if attr not in handle.attrs:
            raise DataFormatError(f"{path}: missing file attribute '{attr}' (schema {schema.name})")


# --------------------------------------------------------------------------------- writing

def _file_attrs(handle: h5py.File, schema: Schema, attrs: Mapping[str, Any] | None) -> None:
    handle.attrs[SCHEMA_ATTR] = schema.name
    for key, value in (attrs or {}).items():
        handle.attrs[key] = _encode_attr(value)


def _dataset_attrs(dset: h5py.Dataset, spec: DatasetSpec) -> None:
    dset.attrs["unit"] = spec.unit
    if spec.description:
        dset.attrs["description"] = spec.description


def _chunks(spec: DatasetSpec, shape: Sequence[int], chunk_rows: int) -> tuple[int, ...] | bool:
    if spec.chunks is not None:
        return tuple(
            max(1, got if want is None else min(want, max(got, 1)))
            for want, got in zip(spec.chunks, shape, strict=True)
        )
    if spec.per_row:
        return (max(1, min(chunk_rows, max(shape[0], 1))), *[max(1, d) for d in shape[1:]])
    return True


def write_h5(
    path: str | Path,
    schema: Schema,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    compression: str | None = "gzip",
    chunk_rows: int = 256,
) -> Path:
    """Validate ``arrays`` against ``schema`` and write them to ``path`` atomically.

    The file appears under its final name only once complete (temp file + ``os.replace``).
    """
    path = Path(path)
    unknown = sorted(set(arrays) - set(schema.keys))
    if unknown:
        raise DataFormatError(f"{path}: keys {unknown} are not in schema {schema.name}")
    for spec in schema.datasets:
        if spec.name not in arrays and not spec.optional:
            raise DataFormatError(f"{path}: missing dataset '{spec.name}' to write "
                                  f"(schema {schema.name}, shape {spec.shape_str()})")
    converted = {}
    for key, value in arrays.items():
        array = np.asarray(value)
        _check_array(path, schema[key], array, " (refusing to write)")
        converted[key] = array.astype(schema[key].dtype, copy=False)
    rows = {k: a.shape[0] for k, a in converted.items() if schema[k].per_row}
    if len(set(rows.values())) > 1:
        raise DataFormatError(f"{path}: per-row arrays disagree on the number of rows: {rows}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        _file_attrs(handle, schema, attrs)
        for key, array in converted.items():
            spec = schema[key]
            chunks = _chunks(spec, array.shape, chunk_rows) if array.size else None
            dset = handle.create_dataset(
                key,
                data=array,
                chunks=chunks,
                compression=compression if array.size else None,
                maxshape=(None, *array.shape[1:]) if spec.per_row else None,
            )
            _dataset_attrs(dset, spec)
    return path


class H5Appender:
    """Stream per-row batches into resizable, chunked, compressed datasets.

    Use as a context manager.  Data go to a temporary file next to ``path``; on a clean exit the
    file is checked and renamed to ``path`` (atomic), on an exception it is removed and ``path``
    is left untouched.  Memory use is one batch, whatever the number of rows written.

    >>> with H5Appender("out.h5", schema, attrs={"seed": 1}) as out:   # doctest: +SKIP
    ...     for batch in batches:
    ...         out.append(batch)            # {"energy": (B, 1), "layer_0": (B, 3, 96), ...}
    """

    def __init__(
        self,
        path: str | Path,
        schema: Schema,
        attrs: Mapping[str, Any] | None = None,
        chunk_rows: int = 1024,
        compression: str | None = "gzip",
        compression_opts: int | None = 4,
    ) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.path = Path(path)
        self.schema = schema
        self.chunk_rows = chunk_rows
        self.compression = compression
        self.compression_opts = compression_opts if compression == "gzip" else None
        self._attrs = dict(attrs or {})
        self._stack: contextlib.ExitStack | None = None
        self._handle: h5py.File | None = None
        self.rows = 0

    def __enter__(self) -> H5Appender:
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_path(self.path))
        self._handle = stack.enter_context(h5py.File(tmp, "w"))
        _file_attrs(self._handle, self.schema, self._attrs)
        self._stack = stack
        return self

    def _require_open(self) -> h5py.File:
        if self._handle is None:
            raise RuntimeError("H5Appender is not open: use it in a 'with' block")
        return self._handle

    def set_attrs(self, **attrs: Any) -> None:
        """Set file attributes (e.g. totals known only at the end)."""
        handle = self._require_open()
        for key, value in attrs.items():
            handle.attrs[key] = _encode_attr(value)

    def write(self, key: str, array: np.ndarray) -> None:
        """Write a whole non-per-row dataset (e.g. a table of module energies)."""
        handle = self._require_open()
        spec = self.schema[key]
        array = np.asarray(array)
        _check_array(self.path, spec, array, " (refusing to write)")
        dset = handle.create_dataset(key, data=array.astype(spec.dtype, copy=False))
        _dataset_attrs(dset, spec)

    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        """Append one batch of rows; every per-row dataset of the schema must be present."""
        handle = self._require_open()
        missing = [k for k in self.schema.row_keys
                   if k not in batch and not self.schema[k].optional]
        if missing:
            raise DataFormatError(f"{self.path}: batch misses per-row dataset(s) {missing}")
        unknown = sorted(set(batch) - set(self.schema.row_keys))
        if unknown:
            raise DataFormatError(f"{self.path}: keys {unknown} are not per-row datasets of "
                                  f"schema {self.schema.name}")
        arrays = {k: np.asarray(v) for k, v in batch.items()}
        lengths = {k: a.shape[0] if a.ndim else -1 for k, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DataFormatError(f"{self.path}: batch arrays disagree on rows: {lengths}")
        n = next(iter(lengths.values()))
        for key, array in arrays.items():
            spec = self.schema[key]
            _check_array(self.path, spec, array, " (refusing to append)")
            array = array.astype(spec.dtype, copy=False)
            if key not in handle:
                dset = handle.create_dataset(
                    key,
                    shape=(0, *array.shape[1:]),
                    maxshape=(None, *array.shape[1:]),
                    dtype=spec.dtype,
                    chunks=_chunks(spec, (self.chunk_rows, *array.shape[1:]), self.chunk_rows),
                    compression=self.compression,
                    compression_opts=self.compression_opts,
                )
                _dataset_attrs(dset, spec)
            dset = handle[key]
            if dset.shape[1:] != array.shape[1:]:
                raise DataFormatError(
                    f"{self.path}: dataset '{key}' rows have shape {dset.shape[1:]}, "
                    f"batch has {array.shape[1:]}"
                )
            dset.resize(self.rows + n, axis=0)
            dset[self.rows:self.rows + n] = array
        self.rows += n

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        handle, self._handle = self._handle, None
        if stack is None or handle is None:
            return
        if exc_type is None:
            try:
                for spec in self.schema.datasets:
                    if spec.name not in handle and not spec.optional:
                        raise DataFormatError(
                            f"{self.path}: nothing was written to dataset '{spec.name}' "
                            f"(schema {self.schema.name}); the file was not created"
                        )
            except DataFormatError as error:
                stack.__exit__(type(error), error, error.__traceback__)
                raise
        stack.__exit__(exc_type, exc, tb)


# --------------------------------------------------------------------------------- reading

class H5Reader:
    """Lazy, validated reader of a schema file: structure checked on open, values per read.

    >>> with H5Reader("showers.h5", CALO_SCHEMA) as r:          # doctest: +SKIP
    ...     for batch in r.iter_batches(1024):
    ...         ...
    """

    def __init__(self, path: str | Path, schema: Schema, keys: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.schema = schema
        self.keys = tuple(keys) if keys is not None else schema.keys
        for key in self.keys:
            schema[key]  # unknown key -> KeyError with the schema name
        self._handle = _open(self.path)
        try:
            _check_structure(self.path, self._handle, schema, self.keys)
        except BaseException:
            self._handle.close()
            raise

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> H5Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        for key in self.keys:
            if self.schema[key].per_row and key in self._handle:
                return int(self._handle[key].shape[0])
        return 0

    def __contains__(self, key: str) -> bool:
        return key in self._handle

    @property
    def attrs(self) -> dict[str, Any]:
        """File attributes, decoded (JSON-encoded values come back as Python objects)."""
        return {k: _decode_attr(v) for k, v in self._handle.attrs.items()}

    def dataset_attrs(self, key: str) -> dict[str, Any]:
        return {k: _decode_attr(v) for k, v in self._handle[key].attrs.items()}

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handle[key].shape)

    def read(
        self, key: str, start: int | None = None, stop: int | None = None, index: Any = None
    ) -> np.ndarray:
        """Read rows ``start:stop`` (or an h5py ``index``) of ``key``, validated and converted."""
        spec = self.schema[key]
        if key not in self._handle:
            raise DataFormatError(f"{self.path}: optional dataset '{key}' is not in this file")
        dset = self._handle[key]
        if index is not None:
            array = dset[index]
        else:
            array = dset[slice(start, stop)] if dset.ndim else dset[()]
        array = np.asarray(array)
        offset = (start or 0) if index is None else 0
        _check_finite(self.path, spec, array, row_offset=offset)
        return array.astype(spec.dtype, copy=False)

    def read_all(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        return {k: self.read(k) for k in (keys or self.keys) if k in self._handle}

    def iter_batches(
        self,
        batch_size: int,
        keys: Sequence[str] | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yield dicts of ``batch_size`` consecutive rows of the per-row datasets ``keys``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        keys = [k for k in (keys or self.keys) if self.schema[k].per_row and k in self._handle]
        stop = len(self) if stop is None else min(stop, len(self))
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            yield {k: self.read(k, lo, hi) for k in keys}


def read_h5(
    path: str | Path, schema: Schema, keys: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Read (and validate) whole datasets into memory; prefer :class:`H5Reader` for big files."""
    with H5Reader(path, schema, keys) as reader:
        return reader.read_all()


def validate_file(
    path: str | Path, schema: Schema, check_values: bool = True, batch_size: int = 4096
) -> int:
    """Check structure (and, batch by batch, finiteness) of a file; return its number of rows."""
    with H5Reader(path, schema) as reader:
        if check_values:
            for key in reader.keys:
                if key not in reader:
                    continue
                if not schema[key].per_row:
                    reader.read(key)
                    continue
                for lo in range(0, len(reader), batch_size):
                    reader.read(key, lo, lo + batch_size)
        return len(reader)


def concat_h5(
    inputs: Sequence[str | Path],
    output: str | Path,
    schema: Schema,
    batch_size: int = 4096,
    attrs: Mapping[str, Any] | None = None,
) -> int:
    """Concatenate the per-row datasets of several files (e.g. shards) into ``output``.

    Datasets that are not per-row must be identical in every input and are copied once.  File
    attributes come from the first input, updated with ``attrs``.  Returns the number of rows.
    """
    if not inputs:
        raise ValueError("concat_h5 needs at least one input file")
    readers = [H5Reader(p, schema) for p in inputs]
    try:
        merged_attrs = readers[0].attrs
        merged_attrs.pop(SCHEMA_ATTR, None)
        merged_attrs.update(attrs or {})
        with H5Appender(output, schema, attrs=merged_attrs) as out:
            for spec in schema.datasets:
                if spec.per_row or spec.name not in readers[0]:
                    continue
                first = readers[0].read(spec.name)
                for reader in readers[1:]:
                    other = reader.read(spec.name)
                    if other.shape != first.shape or not np.array_equal(other, first):
                        raise DataFormatError(
                            f"{reader.path}: dataset '{spec.name}' differs from {readers[0].path}; "
                            "these files cannot be merged"
                        )
                out.write(spec.name, first)
            for reader in readers:
                for batch in reader.iter_batches(batch_size):
                    out.append(batch)
            return out.rows
    finally:
        for reader in readers:
            reader.close()


# ---------------------------------------------------------------------------- torch adapter

class H5TorchDataset:
    """Map-style ``torch.utils.data.Dataset`` reading rows of a schema file from disk.

    Items are dicts of tensors.  The file is opened lazily in each process (DataLoader workers),
    and ``__getitems__`` reads a whole batch with one sorted h5py read per key.
    """

    def __init__(
        self, path: str | Path, schema: Schema, keys: Sequence[str] | None = None
    ) -> None:
        self.path = Path(path)
        self.schema = schema
        with H5Reader(self.path, schema, keys) as reader:  # validate the structure once
            self.keys = tuple(k for k in reader.keys if schema[k].per_row and k in reader)
            self._len = len(reader)
        self._reader: H5Reader | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self._len

    def _get_reader(self) -> H5Reader:
        if self._reader is None or self._pid != os.getpid():
            self._reader = H5Reader(self.path, self.schema, self.keys)
            self._pid = os.getpid()
        return self._reader

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        if not -self._len <= index < self._len:
            raise IndexError(f"index {index} out of range for {self._len} rows")
        index = index % self._len
        reader = self._get_reader()
        return {k: torch.as_tensor(reader.read(k, index, index + 1)[0]) for k in self.keys}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        import torch

        idx = np.asarray(indices, dtype=np.int64) % max(self._len, 1)
        unique, inverse = np.unique(idx, return_inverse=True)
        reader = self._get_reader()
        columns = {k: reader.read(k, index=unique.tolist())[inverse] for k in self.keys}
        return [{k: torch.as_tensor(columns[k][i]) for k in self.keys} for i in range(len(idx))]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_reader"] = None
        state["_pid"] = None
        return state
