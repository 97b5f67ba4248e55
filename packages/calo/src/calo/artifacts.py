"""Trained calo models: the one module that builds them for training and loads them back.

``calo train`` writes checkpoints through :func:`physml_core.training.fit`; generate, evaluate,
bench and the library load them with :func:`load_model`, which returns a typed
:class:`LoadedModel` (the model in eval mode, its config, the training energy range in GeV, the
VAE preprocessing, the provenance of the training rows, the checkpoint path and step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from physml_core.checkpoint import Checkpoint
from physml_core.device import resolve_device
from physml_core.errors import CheckpointError
from physml_core.provenance import Provenance, from_records
from physml_core.training import load_trained

from .config import TrainConfig
from .models import MODEL_NAMES, CaloGAN, CaloVAE
from .models.layers import keras_fan_init_
from .preprocessing import ShowerPreprocessor

__all__ = ["PACKAGE", "LoadedModel", "build_model", "load_model", "load_training_provenance",
           "read_checkpoint"]

#: Package name stored in (and required of) calo checkpoints.
PACKAGE = "calo"

#: Generative models calo trains: both sample showers with ``sample_showers(energy_gev)``.
ShowerModel = CaloGAN | CaloVAE


@dataclass
class LoadedModel:
    """A trained model restored from a checkpoint.

    ``model``: CaloGAN or CaloVAE in eval mode on the requested device; ``config``: the
    training config; ``energy_range_gev``: (min, max) incident energy of the training rows in
    GeV (the default range for generation); ``preprocessor``: the VAE's fitted
    :class:`~calo.preprocessing.ShowerPreprocessor` (None for CaloGAN, which has none);
    ``provenance``: the stream rows it was trained and validated on (None when the training
    file recorded none); ``checkpoint``: the file read; ``step``: epochs trained;
    ``particles``: the particle types it generates (a multi-particle CaloGAN: the type of class
    label i is ``particles[i]``; one type: its name when the training file recorded it, else
    [], as for checkpoints written before particle types were recorded).
    """

    model: ShowerModel
    config: TrainConfig
    model_name: str
    energy_range_gev: tuple[float, float]
    preprocessor: ShowerPreprocessor | None
    provenance: list[Provenance] | None
    checkpoint: Path
    step: int
    step_unit: str
    particles: list[str] = field(default_factory=list)

    def label_of(self, particle: str | None) -> int | None:
        """Class label of ``particle`` for generation: None for a one-particle model (whose
        recorded particle, if any, ``particle`` must name), the label for a multi-particle
        CaloGAN (``particle`` required).  An unknown name is a one-line ``ValueError``."""
        multi = isinstance(self.model, CaloGAN) and self.model.n_classes > 1
        if particle is None:
            if multi:
                raise ValueError(f"{self.checkpoint} generates {', '.join(self.particles)}: "
                                 "choose one with --particle")
            return None
        if self.particles and particle not in self.particles:
            raise ValueError(f"unknown particle {particle!r}: {self.checkpoint} generates "
                             f"{', '.join(self.particles)}")
        return self.particles.index(particle) if multi else None


def build_model(config: TrainConfig, preprocessor: ShowerPreprocessor | None = None
                ) -> ShowerModel:
    """A freshly initialised model of ``config.model`` (the VAE with ``preprocessor``; the
    CaloGAN conditioned on ``config.n_classes`` particle types)."""
    if config.model == "gan":
        gan = CaloGAN(config.gan, config.n_classes)
        if config.gan_init_fans == "keras":
            keras_fan_init_(gan)
        return gan
    return CaloVAE(config.vae, preprocessor)


def read_checkpoint(path: str | Path, expect: str | None = None
                    ) -> tuple[Checkpoint, TrainConfig]:
    """The checkpoint (file or run folder: its latest) and its :class:`TrainConfig`.

    ``expect`` ("gan" or "vae") refuses a checkpoint of the other model; a checkpoint of
    another package, an unknown model or an unreadable file is a one-line CheckpointError.
    """
    model_name = MODEL_NAMES[expect] if expect is not None else None
    try:
        ckpt, config = load_trained(path, PACKAGE, TrainConfig, model_name=model_name)
    except (KeyError, IndexError, AttributeError, UnicodeDecodeError) as exc:
        # some files that are not checkpoints make torch.load fail this way
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{exc})") from None
    if ckpt.model_name not in MODEL_NAMES.values():
        raise CheckpointError(f"{ckpt.path}: unknown calo model '{ckpt.model_name}'")
    return ckpt, config


def _provenance(ckpt: Checkpoint) -> list[Provenance] | None:
    records = ckpt.extra.get("data_provenance")
    return None if records is None else from_records(records)


def load_training_provenance(path: str | Path) -> list[Provenance] | None:
    """The stream rows a checkpoint was trained and validated on, without building the model
    (None if the training file recorded no provenance)."""
    ckpt, _ = read_checkpoint(path)
    return _provenance(ckpt)


def load_model(path: str | Path, device: str | torch.device = "cpu",
               expect: str | None = None) -> LoadedModel:
    """Rebuild a trained model (eval mode, on ``device``) and what it was trained with from a
    checkpoint file or run folder (its latest checkpoint)."""
    ckpt, config = read_checkpoint(path, expect)
    prep = None
    if config.model == "vae":
        if "preprocessing" not in ckpt.extra:
            raise CheckpointError(f"{ckpt.path}: VAE checkpoint without its preprocessing state")
        prep = ShowerPreprocessor.from_state_dict(ckpt.extra["preprocessing"])
    model = build_model(config, prep)
    ckpt.restore(model={"model": model}, rng=False)
    model.to(resolve_device(device)).eval()
    if "energy_range_gev" not in ckpt.extra:
        raise CheckpointError(f"{ckpt.path}: checkpoint records no training energy range")
    lo, hi = (float(e) for e in ckpt.extra["energy_range_gev"])
    particles = [str(p) for p in ckpt.extra.get("particles", config.class_names)]
    return LoadedModel(model=model, config=config, model_name=ckpt.model_name,
                       energy_range_gev=(lo, hi), preprocessor=prep,
                       provenance=_provenance(ckpt), checkpoint=ckpt.path, step=ckpt.step,
                       step_unit=ckpt.step_unit, particles=particles)
