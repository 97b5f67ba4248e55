"""Bring your own data: .npy, .npz and CSV files to ``alternators.sequences`` HDF5 files.

Accepted layouts (observations x of N sequences, T steps, D features):

* ``.npy``: one float array (N, T, D), or (T, D) for a single sequence.
* ``.npz``: an array ``x`` (N, T, D) with optional ``z`` (N, T, Dz), ``split`` (N,) and
  ``mask`` ((N, T) or (N, T, D), 1 = observed); or, without ``x``, one array (T_i, D) per
  sequence (any names, in file order) of possibly different lengths.
* CSV with a header row: a long table with one row per time step.  A sequence-id column
  (default ``sequence``) groups the rows into sequences (in order of first appearance; without
  that column the whole table is one sequence), an optional time column orders them, the
  feature columns are given (``columns``) or are all other columns, and optional latent columns
  become ``z``.

Missing values (NaN, empty CSV cells) become a per-feature mask; sequences of different
lengths are padded at the end with masked steps and their ``lengths`` recorded.  Ragged or
mis-shaped input raises :class:`~physml_core.errors.DataFormatError` with a one-line message.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physml_core.errors import DataFormatError

from .dataset import SequenceData

__all__ = ["ImportConfig", "import_sequences", "pad_sequences"]

_FORMATS = ("auto", "npy", "npz", "csv")


@dataclass
class ImportConfig:
    """Configuration of ``alternators import``.

    path: input file.  format: auto (from the suffix) | npy | npz | csv.
    id_column, time_column: CSV columns naming the sequence and ordering its rows (a missing
    id column means one sequence; time_column "" means file order).
    columns: CSV feature columns (empty: all columns but id, time and latent columns).
    latent_columns: CSV columns holding latents z (optional).
    """

    path: str = ""
    format: str = "auto"
    id_column: str = "sequence"
    time_column: str = ""
    columns: tuple[str, ...] = ()
    latent_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise ValueError(f"unknown format {self.format!r}: use {', '.join(_FORMATS)}")


def pad_sequences(seqs: list[np.ndarray], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences (T_i, D) into (N, max T, D), NaN after each end; return it and the
    lengths (N,)."""
    if not seqs:
        raise DataFormatError(f"{where}: no sequence found")
    dims = {s.shape[1] if s.ndim == 2 else None for s in seqs}
    if len(dims) != 1 or None in dims:
        raise DataFormatError(f"{where}: every sequence must be a (T, D) array with the same D; "
                              f"got shapes {sorted({tuple(s.shape) for s in seqs})[:4]}")
    lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
    if (lengths < 1).any():
        raise DataFormatError(f"{where}: a sequence has no steps")
    out = np.full((len(seqs), int(lengths.max()), seqs[0].shape[1]), np.nan, dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out, lengths


def _float_array(value: np.ndarray, name: str, where: str) -> np.ndarray:
    if value.dtype == object:
        raise DataFormatError(f"{where}: {name!r} is ragged (an object array); store one array "
                              "per sequence in a .npz, or a long CSV with a sequence id column")
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise DataFormatError(f"{where}: {name!r} is not numeric (dtype {value.dtype})")
    return value.astype(np.float32)


def _load_npy(path: Path) -> SequenceData:
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataFormatError(f"{path}: ragged or object array; store one array per sequence "
                                  "in a .npz, or a long CSV with a sequence id column") from None
        raise DataFormatError(f"{path}: not a readable .npy file ({exc})") from None
    except OSError as exc:
        raise DataFormatError(f"{path}: not a readable .npy file ({exc})") from None
    x = _float_array(x, "array", str(path))
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise DataFormatError(f"{path}: expected an array (N, T, D) or (T, D), got shape "
                              f"{x.shape}")
    return SequenceData(x=x, source=str(path), attrs={"imported_from": str(path)})


def _load_npz(path: Path) -> SequenceData:
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {k: archive[k] for k in archive.files}
    except ValueError as exc:
        raise DataFormatError(f"{path}: ragged or object array in the archive ({exc}); store "
                              "one array per sequence") from None
    except (OSError, EOFError) as exc:
        raise DataFormatError(f"{path}: not a readable .npz file ({exc})") from None
    where = str(path)
    attrs: dict[str, Any] = {"imported_from": where}
    if "x" in arrays:
        x = _float_array(arrays["x"], "x", where)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3:
            raise DataFormatError(f"{where}: 'x' must have shape (N, T, D), got {x.shape}")
        z = arrays.get("z")
        if z is not None:
            z = _float_array(z, "z", where)
            if z.ndim == 2:
                z = z[None]
        mask = arrays.get("mask")
        attrs["split_given"] = "split" in arrays
        return SequenceData(x=x, z=z, split=arrays.get("split"),
                            mask=None if mask is None else mask.astype(bool),
                            source=where, attrs=attrs)
    seqs = []
    for name, value in arrays.items():
        value = _float_array(value, name, where)
        if value.ndim == 1:
            value = value[:, None]
        if value.ndim != 2:
            raise DataFormatError(f"{where}: array {name!r} must be one sequence (T, D), got "
                                  f"shape {value.shape}")
        seqs.append(value)
    x, lengths = pad_sequences(seqs, where)
    attrs["sequence_names"] = list(arrays)
    return SequenceData(x=x, lengths=lengths, source=where, attrs=attrs)


def _cell(text: str, row: int, column: str, where: str) -> float:
    text = text.strip()
    if text == "" or text.lower() in ("nan", "na", "null"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataFormatError(f"{where}: row {row}, column {column!r}: {text!r} is not a "
                              "number") from None


def _load_csv(path: Path, config: ImportConfig) -> SequenceData:
    where = str(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{where}: not a readable CSV file ({exc})") from None
    if not header:
        raise DataFormatError(f"{where}: empty CSV file (a header row is required)")
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        raise DataFormatError(f"{where}: duplicate column names in the header")
    index = {name: i for i, name in enumerate(header)}
    for name in (*config.columns, *config.latent_columns):
        if name not in index:
            raise DataFormatError(f"{where}: no column {name!r}; the header has {header}")
    if config.time_column and config.time_column not in index:
        raise DataFormatError(f"{where}: no time column {config.time_column!r}")
    id_col = config.id_column if config.id_column in index else None
    skip = {id_col, config.time_column or None, *config.latent_columns}
    features = list(config.columns) or [h for h in header if h not in skip]
    if not features:
        raise DataFormatError(f"{where}: no feature columns")
    groups: dict[str, list[tuple[float, list[float], list[float]]]] = {}
    for r, row in enumerate(rows, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataFormatError(f"{where}: row {r} has {len(row)} fields, the header has "
                                  f"{len(header)}")
        key = row[index[id_col]].strip() if id_col else ""
        order = _cell(row[index[config.time_column]], r, config.time_column, where) \
            if config.time_column else float(r)
        feats = [_cell(row[index[c]], r, c, where) for c in features]
        lats = [_cell(row[index[c]], r, c, where) for c in config.latent_columns]
        groups.setdefault(key, []).append((order, feats, lats))
    if not groups:
        raise DataFormatError(f"{where}: the CSV holds no data rows")
    xs, zs = [], []
    for key, items in groups.items():
        times = [t for t, _, _ in items]
        if config.time_column and len(set(times)) != len(times):
            raise DataFormatError(f"{where}: sequence {key!r} has repeated time values")
        items.sort(key=lambda item: item[0])
        xs.append(np.array([f for _, f, _ in items], dtype=np.float32))
        zs.append(np.array([z for _, _, z in items], dtype=np.float32))
    x, lengths = pad_sequences(xs, where)
    z = pad_sequences(zs, where)[0] if config.latent_columns else None
    attrs = {"imported_from": where, "feature_columns": features,
             "latent_columns": list(config.latent_columns),
             "sequence_ids": list(groups)}
    return SequenceData(x=x, z=z, lengths=lengths if len(set(lengths.tolist())) > 1 else None,
                        source=where, attrs=attrs)


def import_sequences(config: ImportConfig) -> SequenceData:
    """Read ``config.path`` as sequences; NaN -> mask, variable lengths padded with masks."""
    path = Path(config.path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    fmt = config.format
    if fmt == "auto":
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in ("npy", "npz", "csv"):
            raise DataFormatError(f"{path}: cannot tell the format from the suffix; use "
                                  "--format npy|npz|csv")
    if fmt == "npy":
        data = _load_npy(path)
    elif fmt == "npz":
        data = _load_npz(path)
    else:
        data = _load_csv(path, config)
    if data.lengths is not None:
        pad = np.arange(data.n_steps)[None, :] >= data.lengths[:, None]
        observed = data.observed("x") & ~pad[..., None]
        data.mask = None if observed.all() else observed
        if data.z is not None:
            data.z_mask = data.observed("z") & ~pad[..., None]
    return data
