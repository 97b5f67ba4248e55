"""The training configuration of CaloGAN and CaloVAE, and its named presets.

:class:`TrainConfig` inherits the run options every physml trainer shares
(:class:`physml_core.training.RunConfig`: run folder, resume, seed, device, time limit,
checkpoint cadence); each field with ``opt`` metadata is a ``calo train`` option.  Presets are
complete :class:`TrainConfig` instances (:data:`PRESETS`, preset -> model -> config); the
dataclass defaults are the default preset (``cpu``) for the default model (``vae``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Literal

from physml_core.errors import ConfigError
from physml_core.options import opt
from physml_core.training import RunConfig

from .models import MODEL_NAMES, CaloGANConfig, CaloVAEConfig

__all__ = ["DEFAULT_PRESET", "PRESETS", "TrainConfig", "preset_config"]

ModelKind = Literal["gan", "vae"]


@dataclass
class TrainConfig(RunConfig):
    """Everything a training run needs; saved in ``config.json`` and in every checkpoint.

    Energies in GeV.  ``max_rows`` limits the rows of ``data`` used (train + validation; None:
    all); the last ``val_fraction`` of them are held out for validation.  ``max_minutes`` stops
    training gracefully (checkpoint written) after that wall time (None or ``inf``: no limit).

    Several particle types (CaloGAN only, the original's ACGAN mode): ``data`` is a list of
    files, one per particle type, ``particles`` names the particle of each (same order; filled
    from the files' provenance by :func:`calo.train.resolve_particles` when empty).  The class
    labels are the particle names in sorted order (the original's ``LabelEncoder``);
    ``max_rows`` and ``val_fraction`` apply to each file.  ``gan_init_fans`` chooses the fans
    of CaloGAN's initial locally connected and minibatch-discrimination kernels: ``keras``
    (default) as the original's Keras drew them, ``per_position`` the earlier, larger draws (see
    :func:`calo.models.layers.keras_fan_init_`; it affects only a fresh start).  ``aux_weight_gan`` (0.2) weights the
    auxiliary classification loss and ``aux_label_flip`` (0.3) is the probability with which
    the labels of generated showers are flipped in the discriminator's fake step (the
    original's ``bit_flip``), both as in the original ``train.py``.
    """

    max_minutes: float | None = field(default=30.0, metadata=opt(
        "Stop gracefully after this many minutes (checkpoint written); the same command "
        "resumes. 'inf': no limit. Default: the preset's (cpu: 30, paper: no limit)."))
    model: ModelKind = field(default="vae", metadata=opt(
        "gan: CaloGAN; vae: CaloVAE.", required=True))
    data: str | list[str] | None = field(default=None, metadata=opt(
        "Training showers (CaloGAN HDF5; the last 10 % of the rows used are held out for "
        "validation). CaloGAN: repeat --data for several particle types, one file each "
        "(the original's multi-particle ACGAN mode).", required=True))
    particles: list[str] = field(default_factory=list)
    epochs: int = field(default=60, metadata=opt(
        "Training epochs. Default: the preset's (cpu: 60 VAE, 12 CaloGAN; paper: 50).", min=1))
    batch_size: int = field(default=256, metadata=opt(
        "Global batch size, all processes together. Default: the preset's (cpu: 256 VAE, 64 "
        "CaloGAN; paper: 64 VAE, 256 CaloGAN).", min=2))
    max_rows: int | None = field(default=50000, metadata=opt(
        "Use only the first N showers of the file. Default: the preset's (cpu: 50000 VAE, "
        "20000 CaloGAN; paper: all).", min=4))
    val_fraction: float = 0.1
    # GAN recipe
    lr_g: float = 2e-4
    lr_d: float = 5e-5
    beta1: float = 0.5
    g_steps: int = 2
    energy_weight_gan: float = 0.05
    aux_weight_gan: float = 0.2
    aux_label_flip: float = 0.3
    gan_init_fans: Literal["per_position", "keras"] = field(default="keras", metadata=opt(
        "CaloGAN only: fans of the initial locally connected and minibatch-discrimination "
        "kernels. keras (default): as Keras (>= 2.0.6) computed them for the original, times "
        "the number of output positions; per_position: per output position (this port's "
        "default before 2026-12-02: about 20x larger kernels, initial showers about 5x the "
        "incident energy)."))
    # VAE recipe
    lr: float = 1e-3
    kl_max: float = 1.0
    kl_anneal_epochs: int = 2
    energy_weight: float = 1.0
    sparsity_weight: float = 1.0
    grad_clip: float = 5.0
    gan: CaloGANConfig = field(default_factory=CaloGANConfig)
    vae: CaloVAEConfig = field(default_factory=CaloVAEConfig)

    def __post_init__(self) -> None:
        if self.max_minutes is not None and math.isinf(self.max_minutes) \
                and self.max_minutes > 0:
            self.max_minutes = None  # --max-minutes inf: no time limit
        if isinstance(self.data, (list, tuple)):
            # one file is stored as a string, as before multi-particle training existed
            self.data = str(self.data[0]) if len(self.data) == 1 else [str(d) for d in self.data]
        self.particles = [str(p) for p in self.particles]
        super().__post_init__()
        if self.model not in MODEL_NAMES:
            raise ConfigError(f"unknown model {self.model!r}: use one of {sorted(MODEL_NAMES)}")
        files = self.data_files
        if isinstance(self.data, list) and not files:
            raise ConfigError("TrainConfig.data: an empty list of training files")
        dup = sorted({f for f in files if files.count(f) > 1})
        if dup:
            raise ConfigError(f"training file given twice: {', '.join(dup)}")
        if len(files) > 1 and self.model != "gan":
            raise ConfigError(f"several training files (particle types) need --model gan "
                              f"(CaloGAN's multi-particle mode); got {len(files)} for "
                              f"{self.model}")
        if self.particles:
            if files and len(self.particles) != len(files):
                raise ConfigError(f"{len(self.particles)} particle name(s) for {len(files)} "
                                  "training file(s): give one per file, in the same order")
            if any(not p or "," in p for p in self.particles):
                raise ConfigError(f"particle names must be non-empty, without commas: "
                                  f"{self.particles}")
            twice = sorted({p for p in self.particles if self.particles.count(p) > 1})
            if twice:
                raise ConfigError(f"particle type given for two files: {', '.join(twice)}; "
                                  "give one file per particle type (merge files of one type "
                                  "with calo merge)")
        if not self.aux_weight_gan >= 0:
            raise ConfigError(f"aux_weight_gan must be non-negative, got {self.aux_weight_gan}")
        if not 0.0 <= self.aux_label_flip <= 1.0:
            raise ConfigError(f"aux_label_flip must be in [0, 1], got {self.aux_label_flip}")
        for name in ("epochs", "g_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.kl_anneal_epochs < 0:
            raise ConfigError(f"kl_anneal_epochs must be non-negative, got "
                              f"{self.kl_anneal_epochs}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2 (batch norm, minibatch features)")
        if self.max_rows is not None and self.max_rows < 4:
            raise ConfigError(f"max_rows must be at least 4, got {self.max_rows}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("lr_g", "lr_d", "lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def data_files(self) -> list[str]:
        """The training files (one per particle type; [] when unset)."""
        if self.data is None:
            return []
        return [self.data] if isinstance(self.data, str) else list(self.data)

    @property
    def class_names(self) -> list[str]:
        """Particle type of each class label of a multi-particle CaloGAN (label i is
        ``class_names[i]``: the names sorted, as the original's ``LabelEncoder``); [] for one
        training file."""
        return sorted(self.particles) if len(self.data_files) > 1 else []

    @property
    def n_classes(self) -> int:
        """Number of particle types the CaloGAN is conditioned on (1: the one-particle GAN)."""
        return max(1, len(self.class_names))


#: The preset ``calo train`` uses without ``--preset``.
DEFAULT_PRESET = "cpu"

#: Named training recipes, preset -> model -> complete config (``data`` and ``run_dir`` unset).
#:
#: ``paper``: the CaloGAN paper's (50 epochs, batch 256, Adam with D lr 2e-5, G lr 2e-4, beta1
#: 0.5, MAE energy weight 0.05, the paper's architecture; a GPU job), and a 50-epoch VAE.
#: ``cpu`` (the default): sized for about 30 minutes on two CPU cores with a 20k-shower
#: (CaloGAN) or 50k-shower (CaloVAE) training set.  For CaloGAN it narrows the network (latent
#: 128 instead of 1024, discriminator Conv2D 32 instead of 64 channels: about 2x cheaper per
#: step), trains on batches of 64 with D lr 5e-5, and keeps the original's MAE energy weight
#: 0.05.  (Until 2026-12-02 it weighted the energy term 1.0; with the original's initial kernel
#: scale, ``gan_init_fans="keras"``, that weight pushed the first generated showers to about
#: 90 % occupancy and the discriminator won within 40 iterations, so 0.05 came back.)
PRESETS: dict[str, dict[str, TrainConfig]] = {
    "cpu": {
        "vae": TrainConfig(model="vae", epochs=60, batch_size=256, lr=1e-3, kl_anneal_epochs=2,
                           max_rows=50000, max_minutes=30.0),
        "gan": TrainConfig(model="gan", epochs=12, batch_size=64, lr_d=5e-5, lr_g=2e-4,
                           beta1=0.5, g_steps=2, energy_weight_gan=0.05, max_rows=20000,
                           max_minutes=30.0,
                           gan=CaloGANConfig(latent_dim=128, d_conv_channels=32)),
    },
    "paper": {
        "vae": TrainConfig(model="vae", epochs=50, batch_size=64, lr=1e-4, kl_anneal_epochs=20,
                           max_rows=None, max_minutes=None),
        "gan": TrainConfig(model="gan", epochs=50, batch_size=256, lr_d=2e-5, lr_g=2e-4,
                           beta1=0.5, g_steps=2, energy_weight_gan=0.05, max_rows=None,
                           max_minutes=None, gan=CaloGANConfig()),
    },
}


def preset_config(preset: str = DEFAULT_PRESET, model: str = "vae") -> TrainConfig:
    """A copy of preset ``preset`` for ``model`` (editing it leaves :data:`PRESETS` alone)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: use one of {sorted(PRESETS)}")
    if model not in PRESETS[preset]:
        raise ConfigError(f"unknown model {model!r}: use one of {sorted(PRESETS[preset])}")
    return copy.deepcopy(PRESETS[preset][model])
