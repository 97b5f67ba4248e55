"""Training configurations of ``clarm train cvae`` and ``clarm train lstm``.

Each field is one command-line option (:func:`physml_core.options.options_from`), with its
default and help text written once here; the shared run options (``--run-dir``,
``--resume/--no-resume``, ``--seed``, ``--device``, ``--max-minutes``, ...) come from
:class:`physml_core.training.RunConfig`.  Checkpoints store the config, and
:mod:`clarm.artifacts` reads it back typed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from physml_core.errors import ConfigError
from physml_core.options import opt
from physml_core.training import RunConfig

__all__ = ["PACKAGE", "UNCERTAINTY_METHODS", "CVAETrainConfig", "LSTMTrainConfig", "require",
           "scheduled_lr"]

PACKAGE = "clarm"

#: Forecast-uncertainty methods of ``clarm evaluate --uncertainty`` (:mod:`clarm.evaluate`;
#: "none": no intervals).
UNCERTAINTY_METHODS = ("conformal", "calibration-residuals", "train-residuals", "none")


def require(value: str | None, name: str, what: str) -> str:
    """``value``, or a one-line :class:`ConfigError` naming the missing option."""
    if not value:
        raise ConfigError(f"{name} is required: {what} (--{name.replace('_', '-')})")
    return value


@dataclass
class CVAETrainConfig(RunConfig):
    """``clarm train cvae``: data, model and optimisation settings (a step is one epoch)."""

    data: str | None = field(default=None, metadata=opt(
        "Phase-space file (HDF5) to train on.", required=True))
    epochs: int = field(default=30, metadata=opt("", min=1))
    batch_size: int = field(default=32, metadata=opt(
        "Global batch of (run, module) images (split over torchrun ranks).", min=2))
    lr: float = field(default=1e-3, metadata=opt("Adam learning rate (start of the schedule).",
                                                 min=0))
    lr_min: float = field(default=1e-5, metadata=opt(
        "Final learning rate of the cosine schedule.", min=0))
    schedule: Literal["cosine", "constant"] = field(default="cosine", metadata=opt(
        "Learning-rate schedule over the epochs."))
    beta: float = field(default=1.0, metadata=opt("KL weight.", min=0))
    latent_dim: int = field(default=8, metadata=opt("Latent dimensions.", min=1))
    cond_decoder: bool = field(default=True, metadata=opt(
        "Condition the decoder too (the reference conditions only the encoder)."))
    condition_on_settings: bool = field(default=False, metadata=opt(
        "Also condition on the run settings."))
    prior: Literal["conditional", "standard"] = field(default="conditional", metadata=opt(
        "Prior of the latents: learned p(z | module), or N(0, I) as in the reference."))
    output_bias: Literal["mean", "zero"] = field(default="mean", metadata=opt(
        "Initial bias of the decoder's output logits: 'mean' = the logit of each projection's "
        "mean normalised training pixel (the images are mostly empty), 'zero' = PyTorch's "
        "default as in the reference (sigmoid near 0.5 everywhere)."))
    base_filters: int = field(default=32, metadata=opt(
        "Filters of the first convolution (doubling per stage).", min=4))
    val_fraction: float = field(default=0.15, metadata=opt(
        "Fraction of the runs held out for validation: the last whole runs of the file "
        "(outside an official test split).", min=0, max=1))
    max_train_runs: int | None = field(default=None, metadata=opt(
        "Use at most this many training runs (default: all).", min=1))
    block_runs: int = field(default=16, metadata=opt(
        "Runs read from the file at a time (training streams; memory ~ this).", min=1))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 2 or not self.lr > 0:
            raise ConfigError("epochs must be >= 1, batch_size >= 2 and lr > 0")
        if self.block_runs < 1:
            raise ConfigError(f"block_runs must be >= 1, got {self.block_runs}")
        if self.max_train_runs is not None and self.max_train_runs < 1:
            raise ConfigError(f"max_train_runs must be >= 1, got {self.max_train_runs}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.prior not in ("conditional", "standard"):
            raise ConfigError(f"prior must be 'conditional' or 'standard', got {self.prior!r}")
        if self.output_bias not in ("mean", "zero"):
            raise ConfigError(f"output_bias must be 'mean' or 'zero', got {self.output_bias!r}")
        if not 0 <= self.lr_min <= self.lr:
            raise ConfigError(f"lr_min must be in [0, lr], got {self.lr_min}")


def scheduled_lr(config: CVAETrainConfig, progress_fraction: float) -> float:
    """Learning rate at ``progress_fraction`` (0..1) of training: cosine decay from ``lr`` to
    ``lr_min`` (stateless, so a resumed run continues on the same curve)."""
    if config.schedule == "constant":
        return config.lr
    frac = min(max(progress_fraction, 0.0), 1.0)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1.0 + math.cos(math.pi * frac))


@dataclass
class LSTMTrainConfig(RunConfig):
    """``clarm train lstm``: next-latent LSTM on the latent sequences of a trained CVAE's
    training runs (a step is one epoch)."""

    data: str | None = field(default=None, metadata=opt(
        "Phase-space file (HDF5) the CVAE was trained on.", required=True))
    cvae: str | None = field(default=None, metadata=opt(
        "CVAE checkpoint (or its run folder).", required=True))
    epochs: int = field(default=200, metadata=opt("", min=1))
    batch_size: int = field(default=8, metadata=opt(
        "Global batch of runs (split over torchrun ranks).", min=1))
    lr: float = field(default=1e-3, metadata=opt("Adam learning rate.", min=0))
    hidden: int = field(default=64, metadata=opt("LSTM hidden units.", min=1))
    layers: int = field(default=2, metadata=opt("LSTM layers.", min=1))
    min_length: int = field(default=1, metadata=opt(
        "Train predictions from at least this many observed latents.", min=1))
    calibration_fraction: float = field(default=0.15, metadata=opt(
        "Fraction of the CVAE's training runs kept out of LSTM training as calibration runs "
        "for the forecast uncertainty (the last of them in file order, physml's held-out "
        "rule; never the evaluation runs); 0: none.", min=0, max=1))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError("epochs and batch_size must be >= 1 and lr > 0")
        if self.hidden < 1 or self.layers < 1:
            raise ConfigError("hidden and layers must be >= 1")
        if self.min_length < 1:
            raise ConfigError(f"min_length must be >= 1, got {self.min_length}")
        if not 0 <= self.calibration_fraction < 1:
            raise ConfigError("calibration_fraction must be in [0, 1), got "
                              f"{self.calibration_fraction}")
