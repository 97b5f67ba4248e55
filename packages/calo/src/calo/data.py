"""The CaloGAN HDF5 format: schema, validated streaming reads, writes, and a fetch helper.

The public CaloGAN samples (``eplus.hdf5``, ``gamma.hdf5``, ``piplus.hdf5``; Mendeley Data,
DOI 10.17632/pvn3xc3wy5.1) hold, for N showers:

======== ============ ===== ==========================================================
key      shape        unit  meaning
======== ============ ===== ==========================================================
energy   (N, 1)       GeV   incident energy
layer_0  (N, 3, 96)   MeV   energy per cell, first read-out layer (160 x 5 mm cells)
layer_1  (N, 12, 12)  MeV   energy per cell, middle layer (40 x 40 mm cells)
layer_2  (N, 12, 6)   MeV   energy per cell, last layer (40 x 80 mm cells)
overflow (N, 3)       MeV   energy outside the 480 x 480 mm window, per layer
======== ============ ===== ==========================================================

Those files load unchanged; files written here carry the same keys plus unit attributes.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from physml_core.errors import DataFormatError
from physml_core.hdf5 import (
    DatasetSpec,
    H5Appender,
    H5Reader,
    Schema,
    atomic_path,
    concat_h5,
    read_h5,
    validate_file,
    write_h5,
)

__all__ = [
    "CALO_SCHEMA",
    "LAYER_KEYS",
    "H5Appender",
    "concat_h5",
    "count_showers",
    "fetch",
    "iter_showers",
    "read_showers",
    "validate_showers",
    "write_showers",
]

LAYER_KEYS = ("layer_0", "layer_1", "layer_2")

CALO_SCHEMA = Schema(
    name="calogan",
    datasets=(
        DatasetSpec("energy", (None, 1), unit="GeV", description="incident energy"),
        DatasetSpec("layer_0", (None, 3, 96), unit="MeV", description="cell energies, layer 0"),
        DatasetSpec("layer_1", (None, 12, 12), unit="MeV", description="cell energies, layer 1"),
        DatasetSpec("layer_2", (None, 12, 6), unit="MeV", description="cell energies, layer 2"),
        DatasetSpec("overflow", (None, 3), unit="MeV", optional=True,
                    description="energy outside the read-out window per layer"),
    ),
    description="CaloGAN showers (Paganini et al., PRD 97 014021)",
)


def _check_values(path: Path | str, batch: dict[str, np.ndarray]) -> None:
    if "energy" in batch and batch["energy"].size and np.any(batch["energy"] <= 0):
        raise DataFormatError(f"{path}: dataset 'energy' holds non-positive incident energies")


def read_showers(
    path: str | Path, keys: Sequence[str] | None = None, start: int = 0, stop: int | None = None
) -> dict[str, np.ndarray]:
    """Read rows ``start:stop`` of a CaloGAN file into memory (validated; GeV / MeV arrays).

    For large files prefer :func:`iter_showers`, which holds one batch at a time.
    """
    with H5Reader(path, CALO_SCHEMA, keys) as reader:
        out = {k: reader.read(k, start, stop) for k in reader.keys if k in reader}
    _check_values(path, out)
    return out


def iter_showers(
    path: str | Path,
    batch_size: int = 4096,
    keys: Sequence[str] | None = None,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Stream a CaloGAN file in batches of ``batch_size`` rows (dict of arrays per batch)."""
    with H5Reader(path, CALO_SCHEMA, keys) as reader:
        for batch in reader.iter_batches(batch_size, keys, start=start, stop=stop):
            _check_values(path, batch)
            yield batch


def count_showers(path: str | Path) -> int:
    """Number of showers in a CaloGAN file (structure validated, values not read)."""
    with H5Reader(path, CALO_SCHEMA) as reader:
        return len(reader)


def validate_showers(path: str | Path) -> int:
    """Validate a whole CaloGAN file batch by batch; return its number of showers."""
    return validate_file(path, CALO_SCHEMA)


def write_showers(path: str | Path, arrays: dict[str, np.ndarray], attrs: dict | None = None) -> Path:
    """Write CaloGAN arrays to ``path`` atomically (shapes and finiteness validated)."""
    _check_values(path, arrays)
    return write_h5(path, CALO_SCHEMA, arrays, attrs=attrs)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, destination: str | Path, sha256: str, timeout_s: float = 60.0) -> Path:
    """Download a public CaloGAN file to ``destination`` and verify its SHA-256 checksum.

    Only ever called on explicit request (nothing in the package downloads on its own).  If the
    destination exists with the right checksum nothing is downloaded.  A checksum mismatch
    raises :class:`DataFormatError` and leaves no file behind.  ``file://`` URLs work too.
    """
    destination = Path(destination)
    sha256 = sha256.lower().strip()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    if destination.exists() and _sha256(destination) == sha256:
        return destination
    with atomic_path(destination) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as f:
                shutil.copyfileobj(response, f, length=1 << 20)
        except OSError as exc:
            raise DataFormatError(f"cannot download {url}: {exc}") from None
        found = _sha256(tmp)
        if found != sha256:
            raise DataFormatError(
                f"{url}: checksum mismatch (expected sha256 {sha256}, got {found}); "
                "the file was not kept"
            )
    return destination


# Re-exported for callers that stream their own files.
__all__ += ["read_h5"]
