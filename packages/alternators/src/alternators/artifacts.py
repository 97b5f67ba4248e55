"""Trained models on disk: what a checkpoint holds besides the weights, and the one loader.

Training (:mod:`alternators.train`, through :func:`physml_core.training.fit`) stores with every
checkpoint the :class:`~alternators.config.TrainConfig` and :func:`checkpoint_extra`: the
standardisation of observations (and latents, when supervised) fitted on the training split,
and the model's dimensions.  :func:`load_model` reads a checkpoint back into a
:class:`LoadedModel`; evaluate, sample, forecast and impute all load through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physml_core.checkpoint import Checkpoint
from physml_core.errors import CheckpointError
from physml_core.provenance import Provenance, from_records
from physml_core.training import load_trained

from .config import PACKAGE, TrainConfig
from .data.dataset import Standardizer
from .models.base import SequenceModel
from .models.factory import build_model

__all__ = ["LoadedModel", "checkpoint_extra", "load_model"]


@dataclass
class LoadedModel:
    """A trained model with what is needed to use it on raw data.

    model: the network (eval mode, on the requested device).  config: its training config.
    x_norm: standardisation of the observations (per feature, (Dx,) mean and std).
    z_norm: standardisation of the latents, or None for a model trained without latents
    (its latents are then in the model's own units).  checkpoint: the file read.
    step: epochs trained.
    """

    model: SequenceModel
    config: TrainConfig
    x_norm: Standardizer
    z_norm: Standardizer | None
    checkpoint: Path
    step: int
    #: stream sequences it trained and validated on (None: checkpoint or file recorded none)
    data_provenance: list[Provenance] | None = None
    #: the validation part of ``data_provenance``
    validation_provenance: list[Provenance] | None = None

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def supervised(self) -> bool:
        return self.z_norm is not None


def checkpoint_extra(model: SequenceModel, x_norm: Standardizer,
                     z_norm: Standardizer | None) -> dict[str, Any]:
    """What a checkpoint holds besides the states: the standardisations and the model's
    dimensions Dx, Dz (what :func:`load_model` needs to rebuild it)."""
    return {
        "x_norm": x_norm.state(),
        "z_norm": None if z_norm is None else z_norm.state(),
        "obs_dim": model.obs_dim,
        "latent_dim": model.latent_dim,
    }


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint (file, or run folder: its latest checkpoint) written by
    ``alternators train``; refuses checkpoints of other packages in one line."""
    ckpt, config = load_trained(path, PACKAGE, TrainConfig)
    extra = ckpt.extra
    try:
        obs_dim, latent_dim = int(extra["obs_dim"]), int(extra["latent_dim"])
        x_state = extra["x_norm"]
    except KeyError as exc:
        raise CheckpointError(f"{ckpt.path}: checkpoint lacks {exc} (not a trained "
                              "alternators model)") from None
    model = build_model(config.model, obs_dim, latent_dim)
    if model.name != ckpt.model_name:
        raise CheckpointError(f"{ckpt.path}: model name {ckpt.model_name!r} does not match its "
                              f"config ({model.name!r})")
    ckpt.restore(model={"model": model} if _named(ckpt) else model, rng=False)
    model.to(device).eval()
    z_state = extra.get("z_norm")
    return LoadedModel(
        model=model, config=config, x_norm=Standardizer.from_state(x_state),
        z_norm=None if z_state is None else Standardizer.from_state(z_state),
        checkpoint=ckpt.path, step=ckpt.step,
        data_provenance=_provenance(ckpt, "data_provenance"),
        validation_provenance=_provenance(ckpt, "validation_provenance"),
    )


def _provenance(ckpt: Checkpoint, key: str) -> list[Provenance] | None:
    """Provenance records stored under ``key`` in the checkpoint extra (None if absent)."""
    records = ckpt.extra.get(key)
    if not isinstance(records, list):
        return None
    try:
        return from_records(records)
    except ValueError as exc:
        raise CheckpointError(f"{ckpt.path}: {exc}") from None


def _named(ckpt: Checkpoint) -> bool:
    """True for checkpoints written by the shared layer (states keyed by name: {"model": ...});
    False for the bare state dicts of earlier versions of this package."""
    stored = ckpt.state.get("model")
    return isinstance(stored, dict) and set(stored) == {"model"} and isinstance(
        stored["model"], dict)
