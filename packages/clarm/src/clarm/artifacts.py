"""Trained clarm models on disk: what a checkpoint holds besides the weights, and the one way
to load them.

Training (:mod:`clarm.train`, through :func:`physml_core.training.fit`) writes checkpoints
whose ``extra`` is :meth:`CVAEFitted.to_extra` / :meth:`LSTMFitted.to_extra`; generate,
forecast, evaluate and bench load them with :func:`load_cvae` / :func:`load_lstm`, which return
typed :class:`LoadedCVAE` / :class:`LoadedLSTM`.  Nothing here imports the trainers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import torch

from physml_core.checkpoint import Checkpoint, load_checkpoint
from physml_core.config import from_dict
from physml_core.device import resolve_device
from physml_core.errors import CheckpointError, ConfigError
from physml_core.provenance import Provenance, from_records

from .config import PACKAGE, CVAETrainConfig, LSTMTrainConfig
from .data import PhaseSpaceFile
from .models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig
from .normalise import Normalizer

__all__ = [
    "CVAEFitted",
    "LSTMFitted",
    "LoadedCVAE",
    "LoadedLSTM",
    "check_compatible",
    "encode_latents",
    "encode_runs",
    "load_cvae",
    "load_lstm",
    "trained_on",
    "training_provenance",
]

ConfigT = TypeVar("ConfigT", CVAETrainConfig, LSTMTrainConfig)
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def _float(value: object) -> FloatArray:
    return np.asarray(value, dtype=np.float32)


def _int(value: object) -> IntArray:
    return np.asarray(value, dtype=np.int64)


@dataclass
class CVAEFitted:
    """What CVAE training fitted on its data; every CVAE checkpoint holds it in ``extra``.

    ``settings_mean``/``settings_std`` (S,) exist only for a model conditioned on the run
    settings; ``latents_min``/``latents_max`` (modules, latent) are the per-module box of the
    training latents (the reference's sampler), only in a run's final checkpoint.
    ``train_run_index`` (T,) are the global run numbers of ``train_runs`` (positions in the
    training file); checkpoints from before it was recorded lack it.
    """

    model_config: CVAEConfig
    normalizer: Normalizer
    train_runs: IntArray
    val_runs: IntArray
    dataset_id: str
    train_run_index: IntArray | None = None
    settings_mean: FloatArray | None = None
    settings_std: FloatArray | None = None
    latents_min: FloatArray | None = None
    latents_max: FloatArray | None = None

    def to_extra(self) -> dict[str, object]:
        extra: dict[str, object] = {
            "model_config": dataclasses.asdict(self.model_config),
            "normalizer_scale": self.normalizer.scale, "train_runs": self.train_runs,
            "val_runs": self.val_runs, "dataset_id": self.dataset_id}
        for key in ("settings_mean", "settings_std", "latents_min", "latents_max",
                    "train_run_index"):
            value = getattr(self, key)
            if value is not None:
                extra[key] = value
        return extra

    @classmethod
    def from_extra(cls, extra: Mapping[str, object], path: Path) -> CVAEFitted:
        def optional(key: str) -> FloatArray | None:
            return None if extra.get(key) is None else _float(extra[key])

        try:
            config = extra["model_config"]
            if not isinstance(config, dict):
                raise CheckpointError(f"{path}: CVAE checkpoint's model_config is not a mapping")
            return cls(model_config=from_dict(CVAEConfig, config),
                       normalizer=Normalizer(_float(extra["normalizer_scale"])),
                       train_runs=_int(extra["train_runs"]), val_runs=_int(extra["val_runs"]),
                       dataset_id=str(extra.get("dataset_id", "")),
                       train_run_index=(None if extra.get("train_run_index") is None
                                        else _int(extra["train_run_index"])),
                       settings_mean=optional("settings_mean"),
                       settings_std=optional("settings_std"),
                       latents_min=optional("latents_min"), latents_max=optional("latents_max"))
        except KeyError as exc:
            raise CheckpointError(f"{path}: CVAE checkpoint lacks {exc}") from None
        except (ConfigError, ValueError) as exc:
            raise CheckpointError(f"{path}: CVAE checkpoint holds a bad {exc}") from None


@dataclass
class LSTMFitted:
    """What latent-LSTM training fitted; every LSTM checkpoint holds it in ``extra``:
    the architecture, the latent standardisation ``z_mean``/``z_std`` (latent,) and the
    global run numbers of the calibration runs (CVAE training runs kept out of LSTM training
    for the forecast uncertainty; empty for checkpoints from before 2026-12-02 or
    ``--calibration-fraction 0``)."""

    model_config: LSTMConfig
    z_mean: FloatArray
    z_std: FloatArray
    cvae_path: str
    calibration_run_numbers: IntArray = dataclasses.field(
        default_factory=lambda: np.zeros(0, dtype=np.int64))

    def to_extra(self) -> dict[str, object]:
        return {"model_config": dataclasses.asdict(self.model_config), "z_mean": self.z_mean,
                "z_std": self.z_std, "cvae_path": self.cvae_path,
                "calibration_run_numbers": self.calibration_run_numbers}

    @classmethod
    def from_extra(cls, extra: Mapping[str, object], path: Path) -> LSTMFitted:
        try:
            config = extra["model_config"]
            if not isinstance(config, dict):
                raise CheckpointError(f"{path}: LSTM checkpoint's model_config is not a mapping")
            return cls(model_config=from_dict(LSTMConfig, config),
                       z_mean=_float(extra["z_mean"]), z_std=_float(extra["z_std"]),
                       cvae_path=str(extra.get("cvae_path", "")),
                       calibration_run_numbers=_int(extra.get("calibration_run_numbers", [])))
        except KeyError as exc:
            raise CheckpointError(f"{path}: LSTM checkpoint lacks {exc}") from None
        except ConfigError as exc:
            raise CheckpointError(f"{path}: LSTM checkpoint holds a bad {exc}") from None


@dataclass
class LoadedCVAE:
    """A CVAE restored from a checkpoint with everything training knew (see
    :class:`CVAEFitted` for the arrays), in eval mode on its device."""

    model: CVAE
    normalizer: Normalizer
    train_runs: IntArray
    val_runs: IntArray
    dataset_id: str
    settings_mean: FloatArray | None
    settings_std: FloatArray | None
    latents_min: FloatArray | None
    latents_max: FloatArray | None
    config: CVAETrainConfig
    path: Path
    #: stream runs it was trained on, not validated on (None: checkpoint or file recorded none)
    train_provenance: list[Provenance] | None = None
    #: global run numbers of ``train_runs`` (None: a checkpoint from before they were recorded)
    train_run_index: IntArray | None = None

    @property
    def train_run_numbers(self) -> IntArray:
        """Global run numbers of the training runs.  Checkpoints from before they were
        recorded fall back to the positions, exact for a training file whose runs are numbered
        by position (an unsharded ``clarm simulate`` file or an import)."""
        return self.train_runs if self.train_run_index is None else self.train_run_index

    def settings_tensor(self, settings: npt.NDArray[np.floating] | None,
                        rows: int) -> torch.Tensor | None:
        """Standardised settings (rows, S) as the model was trained on (None for a model not
        conditioned on settings)."""
        if self.model.config.settings_dim == 0:
            return None
        if settings is None:
            raise ValueError("this CVAE is conditioned on settings; the data file has none")
        if self.settings_mean is None or self.settings_std is None:
            raise CheckpointError(f"{self.path}: CVAE conditioned on settings but its "
                                  "checkpoint holds no settings_mean/settings_std")
        return torch.as_tensor((settings - self.settings_mean) / self.settings_std).float()


@dataclass
class LoadedLSTM:
    """A latent LSTM restored from a checkpoint, in eval mode; ``z_mean``/``z_std`` (latent,)
    standardise the CVAE latents it reads and writes."""

    model: LatentLSTM
    z_mean: FloatArray
    z_std: FloatArray
    cvae_path: str
    path: Path
    #: stream runs it was trained on, not validated on (None: checkpoint or file recorded none)
    train_provenance: list[Provenance] | None = None
    #: global run numbers of its calibration runs (CVAE training runs it was not trained on;
    #: empty: none recorded)
    calibration_run_numbers: IntArray = dataclasses.field(
        default_factory=lambda: np.zeros(0, dtype=np.int64))


def training_provenance(ckpt: Checkpoint) -> list[Provenance] | None:
    """The stream runs a checkpoint's model was trained on: its ``data_provenance`` (training
    and validation runs) less its ``validation_provenance``, since clarm evaluates on the
    validation runs of the training file by design.  None when none was recorded."""
    used, val = ckpt.extra.get("data_provenance"), ckpt.extra.get("validation_provenance")
    if not isinstance(used, list):
        return None
    try:
        held = set(from_records(val)) if isinstance(val, list) else set()
        return [p for p in from_records(used) if p not in held]
    except ValueError as exc:
        raise CheckpointError(f"{ckpt.path}: {exc}") from None


def trained_on(cvae: LoadedCVAE, lstm: LoadedLSTM | None) -> list[Provenance] | None:
    """Stream runs the CVAE (and the LSTM, if given) were trained on; None when the CVAE's
    checkpoint records none."""
    if cvae.train_provenance is None:
        return None
    extra = lstm.train_provenance if lstm is not None else None
    return cvae.train_provenance + (extra or [])


def _stored_config(ckpt: Checkpoint, config_type: type[ConfigT]) -> ConfigT:
    """The checkpoint's training config, typed (checkpoints from before the shared training
    layer wrote "" for unset paths and 0 for "all training runs")."""
    stored = dict(ckpt.config) if isinstance(ckpt.config, Mapping) else {}
    for key in ("data", "cvae", "run_dir"):
        if stored.get(key) == "":
            stored[key] = None
    if stored.get("max_train_runs") == 0:
        stored["max_train_runs"] = None
    try:
        return from_dict(config_type, stored)
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.path}: stored config is not a {config_type.__name__} "
                              f"({exc})") from None


def _restore(ckpt: Checkpoint, name: str, model: torch.nn.Module) -> None:
    """Load the weights of ``name`` (checkpoints from before the shared training layer hold
    one unnamed state dict)."""
    stored = ckpt.state.get("model")
    if isinstance(stored, Mapping) and name in stored:
        ckpt.restore(model={name: model}, rng=False)
    else:
        ckpt.restore(model=model, rng=False)


def load_cvae(path: str | Path, device: str | torch.device = "cpu") -> LoadedCVAE:
    """Restore a CVAE checkpoint (file or run folder: its newest checkpoint); refuses other
    packages and models with a one-line :class:`CheckpointError`."""
    ckpt = load_checkpoint(path, package=PACKAGE, model_name="cvae")
    fitted = CVAEFitted.from_extra(ckpt.extra, ckpt.path)
    model = CVAE(fitted.model_config)
    _restore(ckpt, "cvae", model)
    # channels-last convolutions are about 2x faster on CPU (oneDNN) for inference
    model.to(resolve_device(device)).to(memory_format=torch.channels_last)
    model.eval()
    return LoadedCVAE(model=model, normalizer=fitted.normalizer, train_runs=fitted.train_runs,
                      val_runs=fitted.val_runs, dataset_id=fitted.dataset_id,
                      settings_mean=fitted.settings_mean, settings_std=fitted.settings_std,
                      latents_min=fitted.latents_min, latents_max=fitted.latents_max,
                      config=_stored_config(ckpt, CVAETrainConfig), path=ckpt.path,
                      train_provenance=training_provenance(ckpt),
                      train_run_index=fitted.train_run_index)


def load_lstm(path: str | Path, device: str | torch.device = "cpu") -> LoadedLSTM:
    """Restore a latent-LSTM checkpoint (file or run folder)."""
    ckpt = load_checkpoint(path, package=PACKAGE, model_name="lstm")
    fitted = LSTMFitted.from_extra(ckpt.extra, ckpt.path)
    model = LatentLSTM(fitted.model_config)
    _restore(ckpt, "lstm", model)
    model.to(resolve_device(device)).eval()
    return LoadedLSTM(model=model, z_mean=fitted.z_mean, z_std=fitted.z_std,
                      cvae_path=fitted.cvae_path, path=ckpt.path,
                      train_provenance=training_provenance(ckpt),
                      calibration_run_numbers=fitted.calibration_run_numbers)


@torch.no_grad()
def encode_latents(model: CVAE, x: torch.Tensor, runs: IntArray,
                   s_all: torch.Tensor | None, device: torch.device,
                   batch: int = 64) -> torch.Tensor:
    """Latent means (R, M, D), on the CPU, of normalised images x (R, M, 15, H, W) of file
    runs ``runs`` (R,); ``s_all`` (file runs, S) are the standardised settings or None."""
    model.eval()
    r, m = x.shape[:2]
    flat = x.reshape(r * m, *x.shape[2:])
    mods = torch.arange(m).repeat(r)
    run_of = np.repeat(np.arange(r), m)
    out = []
    for lo in range(0, r * m, batch):
        s = None if s_all is None else s_all[runs[run_of[lo:lo + batch]]].to(device)
        cond = model.condition(mods[lo:lo + batch].to(device), s)
        mu, _ = model.encode(flat[lo:lo + batch].to(device), cond)
        out.append(mu.cpu())
    return torch.cat(out).view(r, m, -1)


def check_compatible(cvae: LoadedCVAE, f: PhaseSpaceFile) -> None:
    """Raise ``ValueError`` when ``f`` does not fit the model (modules, resolution)."""
    cfg = cvae.model.config
    if f.resolution != cfg.resolution:
        raise ValueError(f"{f.path}: images are {f.resolution}x{f.resolution}, the CVAE was "
                         f"trained on {cfg.resolution}x{cfg.resolution}")
    if f.modules != cfg.modules:
        raise ValueError(f"{f.path}: {f.modules} modules, the CVAE was trained on {cfg.modules}")


def encode_runs(cvae: LoadedCVAE, f: PhaseSpaceFile, runs: IntArray,
                modules: int | None = None) -> torch.Tensor:
    """Latent means (R, modules, D) of the first ``modules`` modules of ``runs`` of ``f``
    (read 8 runs at a time)."""
    check_compatible(cvae, f)
    modules = f.modules if modules is None else modules
    device = next(cvae.model.parameters()).device
    s_all = cvae.settings_tensor(f.settings(), f.runs)
    out = []
    for lo in range(0, len(runs), 8):
        x = torch.from_numpy(cvae.normalizer(f.images(runs[lo:lo + 8])[:, :modules]))
        out.append(encode_latents(cvae.model, x, runs[lo:lo + 8], s_all, device))
    return torch.cat(out) if out else torch.zeros(0, modules, cvae.model.config.latent_dim)
