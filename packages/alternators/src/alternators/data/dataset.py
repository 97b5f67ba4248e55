"""Sequence data sets on disk and in memory.

Any HDF5 file holding observations ``x`` of shape (N, T, Dx) - N sequences of T steps - is
accepted; latents ``z`` (N, T, Dz), a ``split`` label per sequence (0 train, 1 validation,
2 test), raw ``spikes`` (N, T, M) and an observation ``mask`` (N, T; 1 = observed) are optional.
Files are read and written through :mod:`physml_core.hdf5`, which checks shapes and refuses NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physml_core.errors import DataFormatError
from physml_core.hdf5 import DatasetSpec, H5Reader, Schema, write_h5

__all__ = [
    "PREDICTION_SCHEMA",
    "SEQUENCE_SCHEMA",
    "SPLITS",
    "SequenceData",
    "Standardizer",
    "default_split",
    "load_sequences",
    "save_sequences",
]

SPLITS = {"train": 0, "val": 1, "test": 2}

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
                    description="1 where x is observed, 0 where missing (N, T)"),
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
                    description="1 where x was observed by the model (N, T)"),
        DatasetSpec("x_true", (None, None, None), optional=True,
                    description="the observations given (N, T, Dx)"),
        DatasetSpec("z_true", (None, None, None), optional=True,
                    description="true latents when known (N, T, Dz)"),
    ),
    description="samples, forecasts or imputations of a sequence model",
)


def default_split(n: int, val_fraction: float = 0.1, test_fraction: float = 0.1) -> np.ndarray:
    """Split labels (n,) for files without one: the last sequences are test, before them val.

    Every split gets at least one sequence when ``n >= 3``.
    """
    if n < 1:
        raise ValueError("a data set needs at least one sequence")
    n_test = max(1, round(n * test_fraction)) if n >= 3 else 0
    n_val = max(1, round(n * val_fraction)) if n >= 3 else 0
    labels = np.zeros(n, dtype=np.int8)
    labels[n - n_test - n_val : n - n_test] = SPLITS["val"]
    labels[n - n_test :] = SPLITS["test"]
    return labels


@dataclass
class SequenceData:
    """In-memory sequences.

    x: (N, T, Dx) float32 observations.
    z: (N, T, Dz) float32 latents or None.
    split: (N,) int8 labels (0 train, 1 val, 2 test).
    mask: (N, T) bool, True where x is observed, or None (all observed).
    spikes: (N, T, M) uint8 raw spikes or None.
    attrs: file attributes (simulation parameters, units, provenance).
    """

    x: np.ndarray
    z: np.ndarray | None = None
    split: np.ndarray | None = None
    mask: np.ndarray | None = None
    spikes: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

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
        if not np.isfinite(self.x).all():
            raise DataFormatError(f"{where}: observations x contain NaN/inf")
        if self.z is not None:
            self.z = np.asarray(self.z, dtype=np.float32)
            if self.z.ndim != 3 or self.z.shape[:2] != (n, t_len):
                raise DataFormatError(
                    f"{where}: latents z must have shape ({n}, {t_len}, Dz) to match x, "
                    f"got {self.z.shape}"
                )
            if not np.isfinite(self.z).all():
                raise DataFormatError(f"{where}: latents z contain NaN/inf")
        if self.split is None:
            self.split = default_split(n)
        self.split = np.asarray(self.split, dtype=np.int8)
        if self.split.shape != (n,) or not np.isin(self.split, list(SPLITS.values())).all():
            raise DataFormatError(f"{where}: split must be ({n},) labels in {{0, 1, 2}}")
        if self.mask is not None:
            self.mask = np.asarray(self.mask).astype(bool)
            if self.mask.shape != (n, t_len):
                raise DataFormatError(
                    f"{where}: mask must have shape ({n}, {t_len}), got {self.mask.shape}"
                )

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
                index = np.flatnonzero(self.split == SPLITS[which])
            else:
                raise ValueError(f"unknown split {which!r}: use train, val, test or all")
            if index.size == 0:
                raise DataFormatError(f"{self.source}: the {which!r} split holds no sequence")
        else:
            index = np.asarray(which)

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]

        return SequenceData(
            x=self.x[index], z=pick(self.z), split=self.split[index], mask=pick(self.mask),
            spikes=pick(self.spikes), attrs=dict(self.attrs), source=self.source,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"x": self.x, "split": self.split}
        if self.z is not None:
            out["z"] = self.z
        if self.mask is not None:
            out["mask"] = self.mask.astype(np.uint8)
        if self.spikes is not None:
            out["spikes"] = self.spikes
        return out


def save_sequences(path: str | Path, data: SequenceData) -> Path:
    """Write ``data`` as an ``alternators.sequences`` HDF5 file (atomically)."""
    return write_h5(path, SEQUENCE_SCHEMA, data.arrays(), attrs=data.attrs)


def load_sequences(path: str | Path, *, require_latents: bool = False) -> SequenceData:
    """Read any HDF5 file with ``x`` (N, T, Dx) and optional ``z``, ``split``, ``mask``.

    Raises :class:`~physml_core.errors.DataFormatError` (one line, naming file and key) for a
    missing file, wrong dimensions, NaN/inf or mismatching shapes.
    """
    path = Path(path)
    with H5Reader(path, SEQUENCE_SCHEMA) as reader:
        arrays = reader.read_all()
        attrs = {k: v for k, v in reader.attrs.items() if k != "physml_schema"}
    if require_latents and "z" not in arrays:
        raise DataFormatError(f"{path}: this task needs latents, but the file has no dataset 'z'")
    return SequenceData(
        x=arrays["x"], z=arrays.get("z"), split=arrays.get("split"), mask=arrays.get("mask"),
        spikes=arrays.get("spikes"), attrs=attrs, source=str(path),
    )


@dataclass
class Standardizer:
    """Per-feature affine standardisation fitted on training sequences: (v - mean) / std.

    mean, std: (D,) float32.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, eps: float = 1e-6) -> Standardizer:
        """Fit on (N, T, D) values (statistics over sequences and steps)."""
        flat = values.reshape(-1, values.shape[-1]).astype(np.float64)
        std = flat.std(0)
        return cls(flat.mean(0).astype(np.float32),
                   np.where(std > eps, std, 1.0).astype(np.float32))

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
