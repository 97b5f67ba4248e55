"""The training configuration of the package: the one place each ``alternators train`` option
is written (with its default and help text), below the trainer and the loader.

:class:`TrainConfig` inherits the run options every physml trainer shares
(:class:`physml_core.training.RunConfig`: run folder, resume, seed, device, time limit,
checkpoint cadence, TensorBoard) and nests the model's hyper-parameters
(:class:`~alternators.models.factory.ModelConfig`).  ``alternators train`` generates its options
from both with :func:`physml_core.options.options_from`; checkpoints store the config, and
:mod:`alternators.artifacts` reads it back as this type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from physml_core.errors import ConfigError
from physml_core.options import opt
from physml_core.training import RunConfig

from .models.factory import ModelConfig

__all__ = ["PACKAGE", "TrainConfig"]

PACKAGE = "alternators"


@dataclass
class TrainConfig(RunConfig):
    """Configuration of ``alternators train`` (besides the shared run options).

    data: HDF5 sequence file (required; None only as the unset default).
    model: the model's hyper-parameters.  supervised: use the file's latents z when present.
    epochs, batch_size (the global batch: under torchrun each rank takes 1/N of it), lr,
    weight_decay, grad_clip (0: off): optimisation (AdamW, cosine schedule over ``epochs``).
    window: train on random windows of this many steps (0: whole sequences).
    checkpoint_every: epochs between checkpoints (5 here; the last epoch is always saved).
    """

    data: str | None = field(default=None, metadata=opt("", required=True))
    model: ModelConfig = field(default_factory=ModelConfig)
    supervised: bool = field(default=True, metadata=opt(
        "Train on the file's latents z when it has them; --unsupervised ignores them.",
        flag="--supervised/--unsupervised"))
    epochs: int = field(default=60, metadata=opt("", min=1))
    batch_size: int = field(default=16, metadata=opt(
        "Global batch size (sequences); under torchrun each process takes 1/N of it.", min=1))
    lr: float = field(default=3e-3, metadata=opt("AdamW learning rate (start of the cosine "
                                                 "schedule).", min=0))
    weight_decay: float = field(default=1e-4, metadata=opt("AdamW weight decay.", min=0))
    grad_clip: float = field(default=1.0, metadata=opt(
        "Clip the gradient norm to this value (0: no clipping).", min=0))
    window: int = field(default=0, metadata=opt(
        "Train on random windows of this many steps (0: whole sequences).", min=0))
    checkpoint_every: int = field(default=5, metadata=opt(
        "Write a checkpoint every this many epochs (and at the end).", min=1))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be at least 1")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.window < 0:
            raise ConfigError("need lr > 0 and non-negative weight_decay, grad_clip, window")

    def data_path(self) -> str:
        """``data``, or a one-line :class:`ConfigError` when it was not given."""
        if not self.data:
            raise ConfigError("TrainConfig.data is required: the HDF5 sequence file to train on "
                              "(--data)")
        return self.data
