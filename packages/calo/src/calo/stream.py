"""Memory-bounded shuffled batches from a CaloGAN HDF5 file (never loads the whole file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from physml_core.hdf5 import H5Reader
from physml_core.split import holdout_counts

from .data import CALO_SCHEMA, LAYER_KEYS

__all__ = ["ShowerStream", "split_rows"]

_KEYS = ("energy", *LAYER_KEYS)


def split_rows(total: int, val_fraction: float, max_rows: int | None = None
               ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Train and validation row ranges under the held-out rule of every physml package
    (:mod:`physml_core.split`): the last ``val_fraction`` of the (first ``max_rows``) rows is
    held out, at least 2 rows on each side (batch norm and minibatch features need two).
    Returns ``((train_start, train_stop), (val_start, val_stop))``."""
    n = total if max_rows is None else min(total, max_rows)
    n_train, n_val, _ = holdout_counts(n, val_fraction, minimum=2)
    return (0, n_train), (n_train, n_train + n_val)


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
