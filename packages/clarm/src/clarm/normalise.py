"""Image normalisation of the CVAE: one scale per projection, fitted on training runs only.

The reference scales all images by a global min-max (and re-normalised its test set with the
test set's own range, a leak); here each of the 15 projections is divided by its maximum over
the training runs, so images lie in [0, 1] and held-out runs use the same scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import overload

import numpy as np
import numpy.typing as npt
import torch

from .data import NUM_PROJECTIONS, PhaseSpaceFile

__all__ = ["Normalizer", "iter_blocks"]


class Normalizer:
    """Per-projection scale (15,) fitted on training images: x / max -> [0, 1]."""

    def __init__(self, scale: npt.ArrayLike) -> None:
        array = np.asarray(scale, dtype=np.float32).reshape(-1)
        if array.shape != (NUM_PROJECTIONS,) or not (np.isfinite(array).all()
                                                     and (array > 0).all()):
            raise ValueError("normaliser scale must be 15 positive finite values")
        self.scale: npt.NDArray[np.float32] = array

    @classmethod
    def fit(cls, f: PhaseSpaceFile, runs: npt.NDArray[np.int64], batch: int = 8) -> Normalizer:
        """The per-projection maximum over the images of ``runs`` (read ``batch`` at a time)."""
        peak = np.zeros(NUM_PROJECTIONS, np.float32)
        for lo in range(0, len(runs), batch):
            imgs = f.images(runs[lo:lo + batch])
            peak = np.maximum(peak, imgs.max(axis=(0, 1, 3, 4)))
        return cls(np.where(peak > 0, peak, 1.0))

    @classmethod
    def fit_with_mean(cls, f: PhaseSpaceFile, runs: npt.NDArray[np.int64], batch: int = 8
                      ) -> tuple[Normalizer, npt.NDArray[np.float64]]:
        """:meth:`fit` and, from the same pass, the mean normalised pixel (15,) of each
        projection over the images of ``runs`` (x / max is linear, so the mean of the
        normalised images is the physical mean divided by the scale)."""
        peak = np.zeros(NUM_PROJECTIONS, np.float32)
        total = np.zeros(NUM_PROJECTIONS, np.float64)
        count = 0
        for lo in range(0, len(runs), batch):
            imgs = f.images(runs[lo:lo + batch])
            peak = np.maximum(peak, imgs.max(axis=(0, 1, 3, 4)))
            total += imgs.sum(axis=(0, 1, 3, 4), dtype=np.float64)
            count += imgs.shape[0] * imgs.shape[1] * imgs.shape[3] * imgs.shape[4]
        norm = cls(np.where(peak > 0, peak, 1.0))
        return norm, total / max(count, 1) / norm.scale.astype(np.float64)

    @overload
    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    @overload
    def __call__(self, images: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]: ...

    def __call__(self, images: npt.NDArray[np.floating] | torch.Tensor
                 ) -> npt.NDArray[np.float32] | torch.Tensor:
        """Physical images (..., 15, H, W) -> normalised, clipped to [0, 1] (same kind)."""
        scale = self.scale.reshape(NUM_PROJECTIONS, 1, 1)
        if isinstance(images, torch.Tensor):
            return (images / torch.as_tensor(scale, device=images.device)).clamp(0.0, 1.0)
        return np.clip(images / scale, 0.0, 1.0).astype(np.float32, copy=False)

    def inverse(self, images: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Normalised images (..., 15, H, W) -> physical units."""
        return (images * self.scale.reshape(NUM_PROJECTIONS, 1, 1)).astype(np.float32,
                                                                             copy=False)


def iter_blocks(f: PhaseSpaceFile, runs: npt.NDArray[np.int64], norm: Normalizer,
                block_runs: int) -> Iterator[tuple[npt.NDArray[np.int64], torch.Tensor]]:
    """Yield (positions in ``runs``, normalised images (b, M, 15, H, W) tensor) for
    consecutive blocks of ``runs`` read from the file (only one block is in memory)."""
    for lo in range(0, len(runs), block_runs):
        pos = np.arange(lo, min(len(runs), lo + block_runs), dtype=np.int64)
        yield pos, torch.from_numpy(np.ascontiguousarray(norm(f.images(runs[pos]))))
