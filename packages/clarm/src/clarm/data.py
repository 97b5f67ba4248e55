"""The CLARM phase-space dataset: HDF5 format, lazy reader, and converter for the public arrays.

One row of the file is one linac run (Rautela et al., arXiv:2403.13858, section "Data"):

=============  =====================  ========================================================
dataset        shape                  meaning
=============  =====================  ========================================================
images         (R, M, 15, H, W)       15 pairwise projections of (x, y, z, x', y', z') at each
                                      of M modules; chunked per (run, module)
settings       (R, S)                 per-run machine settings ("labels"): RF amplitudes and
                                      phases per module, focusing, initial beam (optional)
energy_MeV     (R, M)                 mean kinetic energy of the beam at each module exit (optional)
lost_fraction  (R, M)                 cumulative fraction of particles lost (optional, simulated)
outside_frac.  (R, M)                 surviving particles outside the image window (optional)
run_index      (R,)                   global run number (for shards and held-out splits)
=============  =====================  ========================================================

File attributes: ``modules``, ``resolution``, ``projection_names`` (15 strings),
``coordinates``, ``coordinate_units``, ``coordinate_ranges`` ([lo, hi] per coordinate, the
fixed histogram ranges), ``setting_names``, ``dataset_id``, and the row provenance
(:mod:`physml_core.provenance`: one unit is one run; see :func:`file_provenance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from physml_core.errors import DataFormatError
from physml_core.hdf5 import DatasetSpec, H5Appender, H5Reader, Schema
from physml_core.logging import get_logger
from physml_core.provenance import (
    Provenance,
    check_disjoint,
    from_attrs,
    select_rows,
    to_attrs,
)
from physml_core.split import holdout_counts

__all__ = [
    "NUM_PROJECTIONS",
    "PHASE_SPACE_SCHEMA",
    "PhaseSpaceFile",
    "check_held_out",
    "check_images",
    "check_resolution",
    "convert_npy",
    "downsample",
    "file_provenance",
    "held_out_runs",
    "import_zenodo",
    "runs_provenance",
    "split_runs",
    "train_splits",
    "trained_runs_in",
]

NUM_PROJECTIONS = 15

log = get_logger(__name__)

PHASE_SPACE_SCHEMA = Schema(
    name="clarm.phase_space",
    datasets=(
        DatasetSpec("images", (None, None, NUM_PROJECTIONS, None, None), "float32",
                    unit="fraction of macroparticles per pixel",
                    chunks=(1, 1, None, None, None),
                    description="15 phase-space projections per run and module"),
        DatasetSpec("settings", (None, None), "float32", unit="see setting_names",
                    optional=True, description="per-run machine settings (labels)"),
        DatasetSpec("energy_MeV", (None, None), "float32", unit="MeV", optional=True,
                    description="reference kinetic energy at each module exit"),
        DatasetSpec("lost_fraction", (None, None), "float32", unit="1", optional=True,
                    description="cumulative fraction of macroparticles lost (bore or RF "
                                "bucket) by each module exit"),
        DatasetSpec("outside_fraction", (None, None), "float32", unit="1", optional=True,
                    description="fraction of surviving macroparticles outside the image "
                                "window at each module exit"),
        DatasetSpec("split", (None,), "int8", unit="0 train/validation, 1 official test",
                    optional=True, description="official split of imported public data"),
        DatasetSpec("run_index", (None,), "int64", description="global run number"),
    ),
    required_attrs=("modules", "resolution", "projection_names"),
    description="CLARM phase-space images along a linac",
)


def check_resolution(resolution: int) -> int:
    """Return ``resolution`` if it is a power of two in [32, 256], else raise ``ValueError``."""
    if not isinstance(resolution, (int, np.integer)) or resolution < 32 or resolution > 256 \
            or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two from 32 to 256, got {resolution}")
    return int(resolution)


def check_images(images: np.ndarray, modules: int | None = None,
                 resolution: int | None = None, what: str = "images") -> np.ndarray:
    """Validate an image array of shape (..., 15, H, H); raise ``DataFormatError`` if wrong."""
    images = np.asarray(images)
    if images.ndim < 3 or images.shape[-3] != NUM_PROJECTIONS or images.shape[-1] != \
            images.shape[-2]:
        raise DataFormatError(f"{what}: expected shape (..., 15, H, H), got {images.shape}")
    if resolution is not None and images.shape[-1] != resolution:
        raise DataFormatError(f"{what}: expected {resolution}x{resolution} images, got "
                              f"{images.shape[-2]}x{images.shape[-1]}")
    if modules is not None and images.ndim >= 4 and images.shape[-4] != modules:
        raise DataFormatError(f"{what}: expected {modules} modules, got {images.shape[-4]}")
    if not np.isfinite(images).all():
        raise DataFormatError(f"{what}: contains NaN or inf values")
    return images


class PhaseSpaceFile:
    """Lazy reader of a phase-space file (context manager).

    >>> with PhaseSpaceFile("linac.h5") as f:            # doctest: +SKIP
    ...     x = f.images([0, 3], module=5)               # (2, 15, H, W)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader = H5Reader(self.path, PHASE_SPACE_SCHEMA)
        shape = self._reader.shape("images")
        self.runs, self.modules, _, self.resolution, width = shape
        if width != self.resolution:
            self.close()
            raise DataFormatError(f"{self.path}: images are {self.resolution}x{width}, "
                                  "expected square images")
        try:
            check_resolution(self.resolution)
        except ValueError as exc:
            self.close()
            raise DataFormatError(f"{self.path}: {exc}") from None
        if int(self.attrs.get("modules", self.modules)) != self.modules:
            self.close()
            raise DataFormatError(f"{self.path}: attribute modules={self.attrs['modules']} but "
                                  f"images hold {self.modules} modules")

    @property
    def attrs(self) -> dict[str, Any]:
        return self._reader.attrs

    def images(self, runs: Sequence[int] | np.ndarray | slice | None = None,
               module: int | None = None) -> np.ndarray:
        """Images of ``runs`` (indices or slice; all if None), all modules or one ``module``.

        Returns (R, M, 15, H, W) or (R, 15, H, W) float32; raises ``DataFormatError`` on NaN.
        """
        if module is not None and not 0 <= module < self.modules:
            raise ValueError(f"module index {module} out of range 0..{self.modules - 1}")
        if runs is None:
            runs = slice(None)
        if isinstance(runs, slice):
            index: Any = (runs,) if module is None else (runs, module)
            return self._reader.read("images", index=index)
        runs = np.asarray(runs, dtype=np.int64)
        if runs.size and (runs.min() < 0 or runs.max() >= self.runs):
            raise ValueError(f"run index out of range 0..{self.runs - 1}")
        order = np.argsort(runs)
        uniq, inverse = np.unique(runs[order], return_inverse=True)
        index = (uniq.tolist(),) if module is None else (uniq.tolist(), module)
        data = self._reader.read("images", index=index)[inverse]
        out = np.empty_like(data)
        out[order] = data
        return out

    def settings(self) -> np.ndarray | None:
        return self._reader.read("settings") if "settings" in self._reader else None

    def energy_MeV(self) -> np.ndarray | None:
        return self._reader.read("energy_MeV") if "energy_MeV" in self._reader else None

    def run_index(self) -> np.ndarray:
        return self._reader.read("run_index")

    def split(self) -> np.ndarray | None:
        """Official split per run (0 train/validation, 1 test) of imported data, else None."""
        return self._reader.read("split") if "split" in self._reader else None

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> PhaseSpaceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_runs(num_runs: int,
               val_fraction: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(train, held-out) run positions of 0..num_runs-1 under physml's held-out rule
    (:func:`physml_core.split.holdout_counts`): the last ``round(val_fraction * num_runs)``
    runs (at least one) are held out, the rest train.  Whole runs, never (run, module) pairs;
    no seed: the same file always splits the same way."""
    if num_runs < 2:
        raise ValueError(f"need at least 2 runs to hold some out, the file has {num_runs}")
    n_train, _, _ = holdout_counts(num_runs, val_fraction)
    runs = np.arange(num_runs, dtype=np.int64)
    return runs[:n_train], runs[n_train:]


def train_splits(f: PhaseSpaceFile,
                 val_fraction: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(train, validation) runs of ``f``: :func:`split_runs` over the runs outside the
    official test split, in file order (imported public data keeps its test runs out of
    training entirely; the validation runs are the last of the remaining runs)."""
    split = f.split()
    pool = np.arange(f.runs) if split is None else np.flatnonzero(split == 0)
    tr, va = split_runs(len(pool), val_fraction)
    return pool[tr].astype(np.int64), pool[va].astype(np.int64)


class TrainedOn(Protocol):
    """What a trained model records about its data (e.g. :class:`clarm.artifacts.LoadedCVAE`):
    ``train_runs``/``val_runs`` are positions in its training file, ``train_run_numbers`` the
    global run numbers (``run_index``) of its training runs, valid in every file of the same
    simulation (shards, merged files)."""

    dataset_id: str
    train_runs: npt.NDArray[np.int64]
    val_runs: npt.NDArray[np.int64]

    @property
    def train_run_numbers(self) -> npt.NDArray[np.int64]: ...


def _same_dataset(model: TrainedOn, f: PhaseSpaceFile) -> bool:
    return bool(model.dataset_id) and str(f.attrs.get("dataset_id", "")) == model.dataset_id


def trained_runs_in(model: TrainedOn, f: PhaseSpaceFile) -> npt.NDArray[np.int64]:
    """Positions in ``f`` of the runs ``model`` was trained on (matched by global run number,
    so a model trained on one shard finds its runs in the merged file or another shard); empty
    for a file of another simulation."""
    if not _same_dataset(model, f):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.isin(f.run_index(), model.train_run_numbers)).astype(np.int64)


def held_out_runs(model: TrainedOn, f: PhaseSpaceFile) -> npt.NDArray[np.int64]:
    """Runs of ``f`` never used in training ``model``: the official test split of imported
    public data, else every run of ``f`` whose global run number is not one of the model's
    training runs (for its training file: the held-out split, plus any runs
    ``max_train_runs`` left unused), all runs of another simulation."""
    split = f.split()
    if _same_dataset(model, f) and split is not None and (split == 1).any():
        return np.flatnonzero(split == 1).astype(np.int64)  # the official test split
    trained = trained_runs_in(model, f)
    return np.setdiff1d(np.arange(f.runs, dtype=np.int64), trained)


def file_provenance(f: PhaseSpaceFile) -> list[Provenance] | None:
    """The provenance records of ``f`` (one unit = one run), or None if it records none."""
    return from_attrs(f.attrs)


def runs_provenance(records: Sequence[Provenance],
                    runs: Sequence[int] | npt.NDArray[np.int64]) -> list[Provenance]:
    """Stream runs held by the file positions ``runs`` of a file made of ``records``: each
    contiguous block of positions becomes one :func:`~physml_core.provenance.select_rows`."""
    pos = np.unique(np.asarray(runs, dtype=np.int64))
    out: list[Provenance] = []
    if len(pos) == 0:
        return out
    breaks = np.flatnonzero(np.diff(pos) != 1) + 1
    for block in np.split(pos, breaks):
        out.extend(select_rows(records, int(block[0]), int(block[-1]) + 1))
    return out


def check_held_out(trained_on: Sequence[Provenance] | None, f: PhaseSpaceFile,
                   runs: Sequence[int] | npt.NDArray[np.int64]) -> str:
    """Refuse (:class:`~physml_core.provenance.ProvenanceOverlapError`, one line) held-out
    ``runs`` of ``f`` that are runs a model was trained on (``trained_on``, stream runs from
    its checkpoint); returns the status for reports.  Unchecked (a warning) when the model or
    the file records no provenance."""
    if trained_on is None:
        log.warning("the checkpoint records no training provenance: cannot check that the "
                    "runs of %s are held out", f.path)
        return "not checked: the checkpoint records no training provenance"
    records = file_provenance(f)
    if records is None:
        log.warning("%s records no provenance: cannot check its runs are held out", f.path)
        return f"not checked: {f.path} records no provenance"
    check_disjoint(trained_on, runs_provenance(records, runs), f"held-out runs of {f.path}")
    return "held out: no evaluated run is a training run"


def downsample(images: np.ndarray, resolution: int) -> np.ndarray:
    """Block-sum (..., H, W) images down to (..., resolution, resolution) (H a multiple)."""
    h = images.shape[-1]
    if h == resolution:
        return images
    if h % resolution:
        raise ValueError(f"cannot downsample {h}x{h} images to {resolution}x{resolution}")
    f = h // resolution
    shape = (*images.shape[:-2], resolution, f, resolution, f)
    return images.reshape(shape).sum(axis=(-3, -1))


def convert_npy(
    images_npy: str | Path,
    output: str | Path,
    labels_npy: str | Path | None = None,
    resolution: int | None = None,
    batch_runs: int = 4,
    energies_MeV: Sequence[float] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Stream the public CLARM ``.npy`` arrays (runs, 48, 15, 256, 256) into the HDF5 format.

    The images are memory-mapped and copied ``batch_runs`` runs at a time (the full set is
    hundreds of GB), optionally block-summed to ``resolution``.  ``labels_npy`` (runs, S) become
    the ``settings``; ``energies_MeV`` (M,) the per-module reference energy of every run.
    """
    try:
        images = np.load(images_npy, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{images_npy}: not a readable .npy array ({exc})") from None
    if images.ndim != 5 or images.shape[2] != NUM_PROJECTIONS or images.shape[3] != \
            images.shape[4]:
        raise DataFormatError(f"{images_npy}: expected shape (runs, modules, 15, H, H), "
                              f"got {images.shape}")
    runs, modules, _, h, _ = images.shape
    resolution = check_resolution(resolution if resolution is not None else h)
    labels = None
    if labels_npy is not None:
        labels = np.load(labels_npy, mmap_mode="r")
        labels = labels.reshape(labels.shape[0], -1)
        if labels.shape[0] != runs:
            raise DataFormatError(f"{labels_npy}: {labels.shape[0]} label rows for {runs} runs")
    energy = None
    if energies_MeV is not None:
        energy = np.asarray(energies_MeV, dtype=np.float32)
        if energy.shape != (modules,):
            raise DataFormatError(f"energies_MeV must have {modules} values, got {energy.shape}")
    meta = {
        "source": f"converted from {Path(images_npy).name}",
        "modules": modules,
        "resolution": resolution,
        "projection_names": [f"channel_{c}" for c in range(NUM_PROJECTIONS)],
        "dataset_id": f"npy:{Path(images_npy).name}:{runs}",
    }
    meta.update(to_attrs([Provenance("clarm.npy", None, str(meta["dataset_id"]), 0, runs)]))
    meta.update(attrs or {})
    with H5Appender(output, PHASE_SPACE_SCHEMA, attrs=meta, chunk_rows=1) as out:
        for lo in range(0, runs, batch_runs):
            hi = min(runs, lo + batch_runs)
            block = downsample(np.asarray(images[lo:hi], dtype=np.float32), resolution)
            check_images(block, what=f"{images_npy} runs {lo}..{hi - 1}")
            batch: dict[str, np.ndarray] = {"images": block,
                                            "run_index": np.arange(lo, hi, dtype=np.int64)}
            if labels is not None:
                batch["settings"] = np.asarray(labels[lo:hi], dtype=np.float32)
            if energy is not None:
                batch["energy_MeV"] = np.repeat(energy[None], hi - lo, axis=0)
            out.append(batch)
    return Path(output)


#: Channel names of the public CLARM data (lanl/clarm, ``allprojnames``), in channel order.
ZENODO_PROJECTION_NAMES: tuple[str, ...] = (
    "x-px", "x-y", "x-py", "x-z", "x-pz", "y-px", "y-py", "y-z", "y-pz", "z-px", "z-py",
    "z-pz", "px-py", "px-pz", "pz-py")


def _npy_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".npy" and p.is_file())
    if not files:
        raise DataFormatError(f"{folder}: no .npy files")
    return files


def import_zenodo(
    folder: str | Path,
    output: str | Path,
    resolution: int | None = None,
    test_file: str | None = None,
    batch_runs: int = 2,
) -> Path:
    """Convert the public CLARM data (Zenodo 10.5281/zenodo.10819001) into one HDF5 file.

    ``folder`` holds ``images/`` and ``labels/``, each with the same number of ``.npy`` files
    (images (runs, 48, 15, 256, 256), labels (runs, ...)); files are paired in sorted-name
    order.  The reference code (lanl/clarm) trains on the first two files and tests on the
    third, so the last file (or ``test_file``, a name in ``images/``) is the official test
    split: its runs get ``split`` = 1.  Run numbers are global (0 .. total - 1 in file order),
    so nothing needs merging.  Every file is memory-mapped and copied ``batch_runs`` runs at
    a time (optionally block-summed to ``resolution``): the full 283 GB set never sits in RAM.
    """
    import hashlib

    folder = Path(folder)
    if not (folder / "images").is_dir() or not (folder / "labels").is_dir():
        raise DataFormatError(f"{folder}: expected the Zenodo layout with images/ and labels/")
    image_files, label_files = _npy_files(folder / "images"), _npy_files(folder / "labels")
    if len(image_files) != len(label_files):
        raise DataFormatError(f"{folder}: {len(image_files)} image files but "
                              f"{len(label_files)} label files")
    names = [p.name for p in image_files]
    test_name = names[-1] if test_file is None else test_file
    if test_name not in names:
        raise DataFormatError(f"{folder}/images: no file {test_name!r} (have {names})")
    arrays, labels = [], []
    for img_path, lab_path in zip(image_files, label_files, strict=True):
        try:
            arr = np.load(img_path, mmap_mode="r")
            lab = np.load(lab_path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataFormatError(f"{img_path}: not a readable .npy array ({exc})") from None
        if arr.ndim != 5 or arr.shape[2] != NUM_PROJECTIONS or arr.shape[3] != arr.shape[4]:
            raise DataFormatError(f"{img_path}: expected (runs, modules, 15, H, H), got "
                                  f"{arr.shape}")
        lab = lab.reshape(lab.shape[0], -1)
        if lab.shape[0] != arr.shape[0]:
            raise DataFormatError(f"{lab_path}: {lab.shape[0]} label rows for {arr.shape[0]} "
                                  "runs")
        arrays.append(arr)
        labels.append(lab)
    shapes = {a.shape[1:] for a in arrays}
    widths = {lab.shape[1] for lab in labels}
    if len(shapes) > 1 or len(widths) > 1:
        raise DataFormatError(f"{folder}: files differ in shape {sorted(shapes)} or label "
                              f"width {sorted(widths)}")
    modules, _, h, _ = arrays[0].shape[1:]
    resolution = check_resolution(resolution if resolution is not None else h)
    ident = hashlib.sha256(json_dumps([(n, a.shape) for n, a in zip(names, arrays,
                                                                     strict=True)]).encode())
    meta = {
        "source": f"CLARM public data (Zenodo 10.5281/zenodo.10819001) from {folder}",
        "modules": int(modules),
        "resolution": resolution,
        "projection_names": list(ZENODO_PROJECTION_NAMES),
        "image_axes": "as stored in the public .npy files (runs, modules, 15, H, W)",
        "files": names,
        "test_file": test_name,
        "dataset_id": "zenodo:" + ident.hexdigest()[:16],
    }
    total = sum(a.shape[0] for a in arrays)
    meta.update(to_attrs([Provenance("clarm.zenodo", None, str(meta["dataset_id"]), 0, total)]))
    offset = 0
    with H5Appender(output, PHASE_SPACE_SCHEMA, attrs=meta, chunk_rows=1) as out:
        for name, arr, lab in zip(names, arrays, labels, strict=True):
            runs = arr.shape[0]
            is_test = np.int8(name == test_name)
            for lo in range(0, runs, batch_runs):
                hi = min(runs, lo + batch_runs)
                block = downsample(np.asarray(arr[lo:hi], dtype=np.float32), resolution)
                check_images(block, what=f"{name} runs {lo}..{hi - 1}")
                out.append({"images": block,
                            "settings": np.asarray(lab[lo:hi], dtype=np.float32),
                            "split": np.full(hi - lo, is_test, np.int8),
                            "run_index": np.arange(offset + lo, offset + hi, dtype=np.int64)})
            offset += runs
    return Path(output)


def json_dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)
