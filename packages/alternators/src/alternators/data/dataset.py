"""Sequence data sets on disk and in memory.

Any HDF5 file holding observations ``x`` of shape (N, T, Dx) - N sequences of T steps - is
accepted; latents ``z`` (N, T, Dz), a ``split`` label per sequence (0 train, 1 validation,
2 test), raw ``spikes`` (N, T, M) and masks of observed values are optional: ``x_mask``
(N, T, Dx) per feature, or ``mask`` (N, T) per step (1 = observed), and ``z_mask`` (N, T, Dz).
Files are read and written through :mod:`physml_core.hdf5`, which checks shapes and refuses NaN:
missing values are stored as 0 with a 0 in the mask.  In memory, NaN in ``x`` or ``z`` becomes a
mask (see :class:`SequenceData`).

Simulated files record where their sequences come from (:mod:`physml_core.provenance`, one unit
is one sequence): :func:`file_provenance` reads it, :func:`rows_provenance` maps file rows to
stream sequences (what a checkpoint stores as ``data_provenance``) and :func:`merge_files`
keeps the inputs' records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physml_core.errors import DataFormatError
from physml_core.hdf5 import DatasetSpec, H5Reader, Schema, concat_h5, write_h5
from physml_core.provenance import Provenance, from_attrs, merged_attrs, select_rows
from physml_core.split import SPLIT_LABELS, holdout_labels

__all__ = [
    "PREDICTION_SCHEMA",
    "SEQUENCE_SCHEMA",
    "SPLITS",
    "SequenceData",
    "Standardizer",
    "default_split",
    "file_provenance",
    "load_sequences",
    "merge_files",
    "rows_provenance",
    "save_sequences",
]

#: The flat provenance attributes (besides ``provenance``) of a single-range file.
SPLITS = SPLIT_LABELS

SEQUENCE_SCHEMA = Schema(
    name="alternators.sequences",
    datasets=(
        DatasetSpec("x", (None, None, None), unit="", description="observations (N, T, Dx)"),
        DatasetSpec("z", (None, None, None), optional=True,
                    description="latent states (N, T, Dz), dimensionless"),
        DatasetSpec("split", (None,), dtype="int8", optional=True,
                    description="0 train, 1 validation, 2 test"),
        DatasetSpec("spikes", (None, None, None), dtype="uint8", optional=True, unit="spikes/bin",
                    description="raw spike trains (N, T, M)"),
        DatasetSpec("mask", (None, None), dtype="uint8", optional=True,
                    description="1 where x is observed, 0 where missing, per step (N, T)"),
        DatasetSpec("x_mask", (None, None, None), dtype="uint8", optional=True,
                    description="1 where x is observed, 0 where missing, per feature (N, T, Dx)"),
        DatasetSpec("z_mask", (None, None, None), dtype="uint8", optional=True,
                    description="1 where z is known, 0 where missing (N, T, Dz)"),
        DatasetSpec("lengths", (None,), dtype="int64", optional=True,
                    description="true length of each (padded) sequence, steps"),
    ),
    description="sequences of observations with optional latent states",
)

PREDICTION_SCHEMA = Schema(
    name="alternators.predictions",
    datasets=(
        DatasetSpec("x_mean", (None, None, None), description="mean observations (N, T, Dx)"),
        DatasetSpec("z_mean", (None, None, None), description="mean latents (N, T, Dz)"),
        DatasetSpec("x_samples", (None, None, None, None),
                    description="observation samples (N, S, T, Dx)"),
        DatasetSpec("z_samples", (None, None, None, None),
                    description="latent samples (N, S, T, Dz)"),
        DatasetSpec("mask", (None, None), dtype="uint8", optional=True,
                    description="1 where every feature of x was observed by the model (N, T)"),
        DatasetSpec("x_mask", (None, None, None), dtype="uint8", optional=True,
                    description="1 where x was observed by the model, per feature (N, T, Dx)"),
        DatasetSpec("x_true", (None, None, None), optional=True,
                    description="the observations given (N, T, Dx)"),
        DatasetSpec("z_true", (None, None, None), optional=True,
                    description="true latents when known (N, T, Dz)"),
    ),
    description="samples, forecasts or imputations of a sequence model",
)


def default_split(n: int, val_fraction: float = 0.1, test_fraction: float = 0.1) -> np.ndarray:
    """Split labels (n,) for files without one, under the held-out rule of every physml package
    (:mod:`physml_core.split`): the last sequences are test, before them validation.

    Every split gets at least one sequence when ``n >= 3``; fewer sequences all train.
    """
    if n < 1:
        raise ValueError("a data set needs at least one sequence")
    if n < 3:
        return np.zeros(n, dtype=np.int8)
    return holdout_labels(n, val_fraction, test_fraction, minimum=1)


def _as_feature_mask(mask: Any, shape: tuple[int, int, int], what: str,
                     where: str) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    n, t_len, d = shape
    if mask.shape == (n, t_len):
        mask = mask[..., None]
    if mask.ndim != 3 or mask.shape[:2] != (n, t_len) or mask.shape[2] not in (1, d):
        raise DataFormatError(f"{where}: {what} must have shape ({n}, {t_len}) or "
                              f"({n}, {t_len}, {d}), got {mask.shape}")
    return np.broadcast_to(mask, shape).copy()


@dataclass
class SequenceData:
    """In-memory sequences.

    x: (N, T, Dx) float32 observations (0 where missing).
    z: (N, T, Dz) float32 latents or None (0 where missing).
    split: (N,) int8 labels (0 train, 1 val, 2 test).
    mask: (N, T, Dx) bool, True where x is observed, or None (all observed).  A (N, T) mask
        per step is accepted and broadcast; NaN entries of x are added to the mask.
    z_mask: (N, T, Dz) bool, True where z is known, or None (all known); NaN entries of z are
        added to it.
    spikes: (N, T, M) uint8 raw spikes or None.
    lengths: (N,) true lengths of padded sequences (steps after them are masked) or None.
    attrs: file attributes (simulation parameters, units, provenance).
    """

    x: np.ndarray
    z: np.ndarray | None = None
    split: np.ndarray | None = None
    mask: np.ndarray | None = None
    spikes: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    z_mask: np.ndarray | None = None
    lengths: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float32)
        where = self.source
        if self.x.ndim != 3:
            raise DataFormatError(
                f"{where}: observations x must have shape (N, T, Dx), got {self.x.shape}"
            )
        n, t_len, dx = self.x.shape
        if n < 1 or t_len < 1 or dx < 1:
            raise DataFormatError(f"{where}: x has an empty axis: shape {self.x.shape}")
        if np.isinf(self.x).any():
            raise DataFormatError(f"{where}: observations x contain inf (mark missing values "
                                  "with NaN or a mask)")
        if self.mask is not None:
            self.mask = _as_feature_mask(self.mask, self.x.shape, "mask", where)
        self.mask, self.x = self._nan_to_mask(self.x, self.mask)
        if self.z is not None:
            self.z = np.asarray(self.z, dtype=np.float32)
            if self.z.ndim != 3 or self.z.shape[:2] != (n, t_len):
                raise DataFormatError(
                    f"{where}: latents z must have shape ({n}, {t_len}, Dz) to match x, "
                    f"got {self.z.shape}"
                )
            if np.isinf(self.z).any():
                raise DataFormatError(f"{where}: latents z contain inf")
            if self.z_mask is not None:
                self.z_mask = _as_feature_mask(self.z_mask, self.z.shape, "z_mask", where)
            self.z_mask, self.z = self._nan_to_mask(self.z, self.z_mask)
        elif self.z_mask is not None:
            raise DataFormatError(f"{where}: z_mask given without latents z")
        if self.split is None:
            self.split = default_split(n)
        self.split = np.asarray(self.split, dtype=np.int8)
        if self.split.shape != (n,) or not np.isin(self.split, list(SPLITS.values())).all():
            raise DataFormatError(f"{where}: split must be ({n},) labels in {{0, 1, 2}}")
        if self.lengths is not None:
            self.lengths = np.asarray(self.lengths, dtype=np.int64)
            if self.lengths.shape != (n,) or (self.lengths < 1).any() or \
                    (self.lengths > t_len).any():
                raise DataFormatError(f"{where}: lengths must be ({n},) values in 1..{t_len}")

    @staticmethod
    def _nan_to_mask(values: np.ndarray, mask: np.ndarray | None
                     ) -> tuple[np.ndarray | None, np.ndarray]:
        """Missing entries (NaN or masked) become 0 with False in the mask; a mask that is
        all True becomes None."""
        nan = np.isnan(values)
        if nan.any():
            mask = ~nan if mask is None else mask & ~nan
        if mask is None:
            return None, values
        values = np.where(mask, values, 0.0).astype(np.float32)
        return (None if mask.all() else mask), values

    def observed(self, which: str = "x") -> np.ndarray:
        """Bool mask (N, T, D) of known values of ``x`` or ``z`` (all True without a mask)."""
        values, mask = (self.x, self.mask) if which == "x" else (self.z, self.z_mask)
        if values is None:
            raise ValueError("no latents in this data set")
        return np.ones(values.shape, dtype=bool) if mask is None else mask

    @property
    def labels(self) -> np.ndarray:
        """(N,) int8 split labels: ``split``, which ``__post_init__`` always sets (a file
        without one gets :func:`default_split`)."""
        if self.split is None:  # unreachable after __post_init__
            raise RuntimeError("SequenceData.split was reset to None")
        return self.split

    @property
    def n_sequences(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_steps(self) -> int:
        return int(self.x.shape[1])

    @property
    def obs_dim(self) -> int:
        return int(self.x.shape[2])

    @property
    def latent_dim(self) -> int | None:
        return None if self.z is None else int(self.z.shape[2])

    def subset(self, which: str | np.ndarray) -> SequenceData:
        """The sequences of one split ("train", "val", "test", "all") or of an index array."""
        if isinstance(which, str):
            if which == "all":
                index = np.arange(self.n_sequences)
            elif which in SPLITS:
                index = np.flatnonzero(self.labels == SPLITS[which])
            else:
                raise ValueError(f"unknown split {which!r}: use train, val, test or all")
            if index.size == 0:
                raise DataFormatError(f"{self.source}: the {which!r} split holds no sequence")
        else:
            index = np.asarray(which)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return SequenceData(
            x=self.x[index], z=pick(self.z), split=self.labels[index], mask=pick(self.mask),
            spikes=pick(self.spikes), attrs=dict(self.attrs), source=self.source,
            z_mask=pick(self.z_mask), lengths=pick(self.lengths),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"x": self.x, "split": self.labels}
        if self.z is not None:
            out["z"] = self.z
        if self.mask is not None:
            out["x_mask"] = self.mask.astype(np.uint8)
        if self.z_mask is not None:
            out["z_mask"] = self.z_mask.astype(np.uint8)
        if self.lengths is not None:
            out["lengths"] = self.lengths
        if self.spikes is not None:
            out["spikes"] = self.spikes
        return out


def save_sequences(path: str | Path, data: SequenceData) -> Path:
    """Write ``data`` as an ``alternators.sequences`` HDF5 file (atomically)."""
    return write_h5(path, SEQUENCE_SCHEMA, data.arrays(), attrs=data.attrs)


def load_sequences(path: str | Path, *, require_latents: bool = False) -> SequenceData:
    """Read any HDF5 file with ``x`` (N, T, Dx) and optional ``z``, ``split``, masks.

    Raises :class:`~physml_core.errors.DataFormatError` (one line, naming file and key) for a
    missing file, wrong dimensions, NaN/inf or mismatching shapes.
    """
    path = Path(path)
    with H5Reader(path, SEQUENCE_SCHEMA) as reader:
        arrays = reader.read_all()
        attrs = {k: v for k, v in reader.attrs.items() if k != "physml_schema"}
    if require_latents and "z" not in arrays:
        raise DataFormatError(f"{path}: this task needs latents, but the file has no dataset 'z'")
    mask = arrays.get("x_mask", arrays.get("mask"))
    return SequenceData(
        x=arrays["x"], z=arrays.get("z"), split=arrays.get("split"), mask=mask,
        spikes=arrays.get("spikes"), attrs=attrs, source=str(path),
        z_mask=arrays.get("z_mask"), lengths=arrays.get("lengths"),
    )


@dataclass
class Standardizer:
    """Per-feature affine standardisation fitted on training sequences: (v - mean) / std.

    mean, std: (D,) float32.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, mask: np.ndarray | None = None,
            eps: float = 1e-6) -> Standardizer:
        """Fit on (N, T, D) values (statistics over sequences and steps), using only the
        entries where ``mask`` (N, T, D) is True when given."""
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
        if mask is None:
            mean, std = flat.mean(0), flat.std(0)
        else:
            m = mask.reshape(flat.shape).astype(np.float64)
            count = np.maximum(m.sum(0), 1.0)
            mean = (flat * m).sum(0) / count
            std = np.sqrt((((flat - mean) ** 2) * m).sum(0) / count)
        return cls(mean.astype(np.float32), np.where(std > eps, std, 1.0).astype(np.float32))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return (values * self.std + self.mean).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Standardizer:
        return cls(np.asarray(state["mean"], dtype=np.float32),
                   np.asarray(state["std"], dtype=np.float32))


def file_provenance(data: SequenceData) -> list[Provenance] | None:
    """The provenance records of a loaded file (one unit = one sequence), None if it has none."""
    return from_attrs(data.attrs)


def rows_provenance(records: Sequence[Provenance],
                    rows: Sequence[int] | np.ndarray) -> list[Provenance]:
    """Stream sequences held by the file rows ``rows`` of a file made of ``records``: each
    contiguous block of rows becomes one :func:`~physml_core.provenance.select_rows`."""
    pos = np.unique(np.asarray(rows, dtype=np.int64))
    out: list[Provenance] = []
    if len(pos) == 0:
        return out
    for block in np.split(pos, np.flatnonzero(np.diff(pos) != 1) + 1):
        out.extend(select_rows(records, int(block[0]), int(block[-1]) + 1))
    return out


def merge_files(inputs: Sequence[str | Path], output: str | Path) -> int:
    """Concatenate sequence files (e.g. simulation shards, in the order given) into ``output``;
    returns the sequences.  The output's provenance lists every input's records in order
    (contiguous ranges of one stream are joined); if any input records none, it records none."""
    found: list[list[Provenance] | None] = []
    for path in inputs:
        with H5Reader(path, SEQUENCE_SCHEMA) as reader:
            found.append(from_attrs(reader.attrs))
    attrs: dict[str, object] = {"shard": "merged", **merged_attrs(found)}
    return concat_h5(list(inputs), output, SEQUENCE_SCHEMA, attrs=attrs)
