"""Memory-bounded shuffled batches from a CaloGAN HDF5 file (never loads the whole file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from physml_core.hdf5 import H5Reader

from .data import CALO_SCHEMA, LAYER_KEYS

__all__ = ["ShowerStream", "split_rows"]

_KEYS = ("energy", *LAYER_KEYS)


def split_rows(total: int, val_fraction: float, max_rows: int | None = None
               ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Train and validation row ranges: the last ``val_fraction`` of the (first ``max_rows``)
    rows is held out.  Returns ``((train_start, train_stop), (val_start, val_stop))``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = total if max_rows is None else min(total, max_rows)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and n >= 4:
        n_val = max(n_val, 2)
    if n - n_val < 2:
        raise ValueError(f"need at least 2 training showers, the data leave {n - n_val}")
    return (0, n - n_val), (n - n_val, n)


class ShowerStream:
    """Shuffled mini-batches of rows ``start:stop`` of a CaloGAN file.

    Each epoch visits contiguous blocks of ``block_rows`` rows in random order and shuffles the
    rows inside a block, so memory holds one block whatever the file size.  Batches smaller than
    ``min_batch`` (the tail) are dropped.  Arrays are float32: energy (B, 1) GeV, layers MeV.
    """

    def __init__(self, path: str | Path, start: int, stop: int, batch_size: int,
                 block_rows: int = 16384, seed: int = 0, min_batch: int = 2) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.path, self.start, self.stop = Path(path), int(start), int(stop)
        self.batch_size, self.block_rows = int(batch_size), max(int(block_rows), int(batch_size))
        self.seed, self.min_batch = int(seed), int(min_batch)

    def __len__(self) -> int:
        """Number of batches per epoch (upper bound)."""
        return max(1, (self.stop - self.start) // self.batch_size)

    def batches_per_epoch(self) -> int:
        """Exact number of batches :meth:`epoch` yields (the same for every epoch)."""
        count = 0
        for lo in range(self.start, self.stop, self.block_rows):
            full, rest = divmod(min(lo + self.block_rows, self.stop) - lo, self.batch_size)
            count += full + (1 if rest >= self.min_batch else 0)
        return count

    def epoch(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        rng = np.random.default_rng([self.seed, int(epoch)])
        blocks = list(range(self.start, self.stop, self.block_rows))
        rng.shuffle(blocks)
        with H5Reader(self.path, CALO_SCHEMA, _KEYS) as reader:
            for lo in blocks:
                hi = min(lo + self.block_rows, self.stop)
                data = {k: reader.read(k, lo, hi) for k in _KEYS}
                if np.any(data["energy"] <= 0):
                    from physml_core.errors import DataFormatError

                    raise DataFormatError(f"{self.path}: non-positive incident energies in rows "
                                          f"{lo}:{hi}")
                perm = rng.permutation(hi - lo)
                for i in range(0, hi - lo, self.batch_size):
                    idx = perm[i:i + self.batch_size]
                    if len(idx) < self.min_batch:
                        continue
                    yield {k: v[idx] for k, v in data.items()}
