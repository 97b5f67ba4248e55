"""Memory-bounded shuffled batches from a CaloGAN HDF5 file (never loads the whole file)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from physml_core.errors import DataFormatError
from physml_core.hdf5 import H5Reader
from physml_core.split import holdout_counts

from .data import CALO_SCHEMA, LAYER_KEYS

__all__ = ["MixedShowerStream", "ShowerStream", "split_rows"]

_KEYS = ("energy", *LAYER_KEYS)


def _read_rows(reader: H5Reader, path: Path, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Rows ``lo:hi`` of every key, refusing non-positive incident energies."""
    data = {k: reader.read(k, lo, hi) for k in _KEYS}
    if np.any(data["energy"] <= 0):
        raise DataFormatError(f"{path}: non-positive incident energies in rows {lo}:{hi}")
    return data


def _batches(data: dict[str, np.ndarray], perm: np.ndarray, batch_size: int, min_batch: int
             ) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive slices of ``perm`` as batches; a tail shorter than ``min_batch`` dropped."""
    for i in range(0, len(perm), batch_size):
        idx = perm[i:i + batch_size]
        if len(idx) >= min_batch:
            yield {k: v[idx] for k, v in data.items()}


def _batch_count(rows: int, batch_size: int, min_batch: int) -> int:
    """Number of batches :func:`_batches` yields for ``rows`` rows."""
    full, rest = divmod(rows, batch_size)
    return full + (1 if rest >= min_batch else 0)


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
        return sum(_batch_count(min(lo + self.block_rows, self.stop) - lo, self.batch_size,
                                self.min_batch)
                   for lo in range(self.start, self.stop, self.block_rows))

    def epoch(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        rng = np.random.default_rng([self.seed, int(epoch)])
        blocks = list(range(self.start, self.stop, self.block_rows))
        rng.shuffle(blocks)
        with H5Reader(self.path, CALO_SCHEMA, _KEYS) as reader:
            for lo in blocks:
                hi = min(lo + self.block_rows, self.stop)
                data = _read_rows(reader, self.path, lo, hi)
                perm = rng.permutation(hi - lo)
                yield from _batches(data, perm, self.batch_size, self.min_batch)


class MixedShowerStream:
    """Shuffled mini-batches mixing several CaloGAN files, each with a class label (the
    multi-particle CaloGAN; the original ``train.py`` concatenates its particle files, shuffles
    all rows once and slices batches, so every batch mixes the particle types in the
    proportion of the files).

    ``sources``: ``(path, start, stop, label)`` per file.  Memory-bounded like
    :class:`ShowerStream`: each file's rows are cut into the same number ``S`` of contiguous
    chunks (``S = ceil(total rows / block_rows)``); each epoch permutes every file's chunks
    independently and forms ``S`` superblocks, one chunk of every file each, whose rows are
    shuffled together and cut into batches.  So every superblock holds the files in their row
    proportions, and every row is visited once per epoch.  Batches carry ``label`` (B,) int64
    besides energy (B, 1) GeV and the layers (MeV); batches smaller than ``min_batch`` (the
    tail of a superblock) are dropped.
    """

    def __init__(self, sources: list[tuple[str | Path, int, int, int]], batch_size: int,
                 block_rows: int = 16384, seed: int = 0, min_batch: int = 2) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not sources:
            raise ValueError("MixedShowerStream needs at least one source file")
        self.sources = [(Path(p), int(lo), int(hi), int(label)) for p, lo, hi, label in sources]
        if any(hi <= lo for _, lo, hi, _ in self.sources):
            raise ValueError(f"every source needs rows: {self.sources}")
        self.batch_size, self.seed, self.min_batch = int(batch_size), int(seed), int(min_batch)
        total = sum(hi - lo for _, lo, hi, _ in self.sources)
        self.n_blocks = max(1, -(-total // max(int(block_rows), int(batch_size))))

    def _chunk(self, source: int, index: int) -> tuple[int, int]:
        _, lo, hi, _ = self.sources[source]
        n = hi - lo
        return lo + n * index // self.n_blocks, lo + n * (index + 1) // self.n_blocks

    def _block_sizes(self) -> list[int]:
        return [sum(b - a for a, b in (self._chunk(f, i) for f in range(len(self.sources))))
                for i in range(self.n_blocks)]

    def __len__(self) -> int:
        """Number of batches per epoch (upper bound)."""
        return max(1, sum(self._block_sizes()) // self.batch_size)

    def batches_per_epoch(self) -> int:
        """Exact number of batches :meth:`epoch` yields (the same for every epoch)."""
        return sum(_batch_count(size, self.batch_size, self.min_batch)
                   for size in self._block_sizes())

    def epoch(self, epoch: int) -> Iterator[dict[str, np.ndarray]]:
        rng = np.random.default_rng([self.seed, int(epoch)])
        orders = [rng.permutation(self.n_blocks) for _ in self.sources]
        with ExitStack() as stack:
            readers = [stack.enter_context(H5Reader(path, CALO_SCHEMA, _KEYS))
                       for path, _, _, _ in self.sources]
            for block in range(self.n_blocks):
                parts: list[dict[str, np.ndarray]] = []
                for f, (reader, (path, _, _, label)) in enumerate(
                        zip(readers, self.sources, strict=True)):
                    lo, hi = self._chunk(f, int(orders[f][block]))
                    if hi <= lo:
                        continue
                    part = _read_rows(reader, path, lo, hi)
                    part["label"] = np.full(hi - lo, label, np.int64)
                    parts.append(part)
                data = {k: np.concatenate([p[k] for p in parts]) for k in (*_KEYS, "label")}
                perm = rng.permutation(len(data["label"]))
                yield from _batches(data, perm, self.batch_size, self.min_batch)
