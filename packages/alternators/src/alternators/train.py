"""Training of every model of the package: the science of one epoch on the shared layer.

:class:`SequenceJob` reads the data file, standardises observations (and latents) with
statistics of the training split, and minimises the model's loss with AdamW, gradient clipping
and a cosine learning-rate schedule, one epoch per step.  :func:`physml_core.training.fit` does
the rest, as for every physml trainer: run folder, resume policy, checkpoints, logs, time
limit and DDP under ``torchrun`` (each rank takes 1/N of every global batch).  A resumed run may
ask for more ``epochs``: the cosine schedule is then stretched to the new length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from physml_core.checkpoint import Checkpoint
from physml_core.distributed import DistContext, wrap_model
from physml_core.errors import ConfigError
from physml_core.logging import get_logger
from physml_core.parallel import rank_rows, share_weight
from physml_core.provenance import to_records
from physml_core.training import Clock, StepUnit, TrainingJob, TrainResult, TrainState, fit

from .artifacts import checkpoint_extra
from .config import PACKAGE, TrainConfig
from .data.dataset import (
    SPLITS,
    SequenceData,
    Standardizer,
    file_provenance,
    load_sequences,
    rows_provenance,
)
from .models.base import SequenceModel
from .models.factory import build_model

__all__ = ["Batch", "SequenceJob", "TrainConfig", "TrainResult", "train"]

log = get_logger("alternators.train")


@dataclass
class Batch:
    """Standardised training tensors: x (N, T, Dx), z (N, T, Dz) or None, masks of known
    values (N, T, D) bool or None (all known)."""

    x: torch.Tensor
    z: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    z_mask: torch.Tensor | None = None

    def take(self, index: torch.Tensor | slice) -> Batch:
        def pick(v: torch.Tensor | None) -> torch.Tensor | None:
            return None if v is None else v[index]

        return Batch(self.x[index], pick(self.z), pick(self.mask), pick(self.z_mask))

    def window(self, start: int, stop: int) -> Batch:
        def cut(v: torch.Tensor | None) -> torch.Tensor | None:
            return None if v is None else v[:, start:stop]

        return Batch(self.x[:, start:stop], cut(self.z), cut(self.mask), cut(self.z_mask))


def _used_provenance(data: SequenceData) -> dict[str, object]:
    """Checkpoint extras naming the stream sequences (physml_core.provenance) a model trained
    and validated on (``data_provenance``, as every physml package stores it) and validated on
    (``validation_provenance``); None when the file records no provenance."""
    records = file_provenance(data)
    if records is None:
        log.warning("%s records no provenance: evaluations cannot check that held-out "
                    "sequences are independent of this training data", data.source)
        return {"data_provenance": None, "validation_provenance": None}
    train = rows_provenance(records, np.flatnonzero(data.labels == SPLITS["train"]))
    val = rows_provenance(records, np.flatnonzero(data.labels == SPLITS["val"]))
    return {"data_provenance": to_records(train + val), "validation_provenance": to_records(val)}


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _evaluate_loss(model: SequenceModel, data: Batch, batch_size: int) -> dict[str, float]:
    """Mean loss parts over all sequences of ``data`` (evaluation mode, no gradients)."""
    model.eval()
    totals: dict[str, float] = {}
    n = data.x.shape[0]
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            b = data.take(slice(lo, lo + batch_size))
            for key, value in model.loss(b.x, b.z, b.mask, b.z_mask).items():
                totals[key] = totals.get(key, 0.0) + float(value) * b.x.shape[0]
    model.train()
    return {k: v / n for k, v in totals.items()}


class SequenceJob(TrainingJob[TrainConfig]):
    """One model of the package trained on one sequence file (see the module docstring)."""

    package: ClassVar[str] = PACKAGE
    step_unit: ClassVar[StepUnit] = "epoch"
    resume_free: ClassVar[frozenset[str]] = frozenset({"epochs"})

    def __init__(self, config: TrainConfig, ctx: DistContext) -> None:
        config.data_path()  # no data file: a one-line ConfigError before anything is written
        super().__init__(config, ctx)

    @property
    def model_name(self) -> str:
        return self.config.model.name

    @property
    def total_steps(self) -> int:
        return self.config.epochs

    def setup(self, resume: Checkpoint | None) -> None:
        config, device = self.config, self.ctx.device
        if config.batch_size < self.ctx.world_size:
            raise ConfigError(f"batch_size {config.batch_size} is smaller than the "
                              f"{self.ctx.world_size} processes that share each batch")
        data = load_sequences(config.data_path())
        self.provenance = _used_provenance(data)
        train_set = data.subset("train")
        try:
            val_set: SequenceData | None = data.subset("val")
        except ValueError:
            val_set = None
        supervised = config.supervised and data.z is not None
        latent_dim = data.latent_dim if supervised and data.latent_dim is not None \
            else config.model.latent_dim
        if resume is not None:  # the statistics the run was started with
            self.x_norm = Standardizer.from_state(resume.extra["x_norm"])
            z_state = resume.extra.get("z_norm")
            self.z_norm = None if z_state is None else Standardizer.from_state(z_state)
        else:
            self.x_norm = Standardizer.fit(train_set.x, train_set.mask)
            self.z_norm = Standardizer.fit(train_set.z, train_set.z_mask) \
                if supervised and train_set.z is not None else None
        self.model = build_model(config.model, data.obs_dim, latent_dim).to(device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=config.epochs, eta_min=config.lr * 0.02)
        self.train_batch = self._tensors(train_set)
        self.val_batch = self._tensors(val_set) if val_set is not None else None
        self.net = wrap_model(self.model, self.ctx)
        self.generator = torch.Generator()

    def _tensors(self, ds: SequenceData) -> Batch:
        device = self.ctx.device
        x = torch.from_numpy(self.x_norm.transform(ds.x)).to(device)
        z = None if self.z_norm is None or ds.z is None else torch.from_numpy(
            self.z_norm.transform(ds.z)).to(device)
        mask = None if ds.mask is None else torch.from_numpy(ds.mask).to(device)
        z_mask = None if z is None or ds.z_mask is None else torch.from_numpy(
            ds.z_mask).to(device)
        return Batch(x, z, mask, z_mask)

    def state(self) -> TrainState:
        return TrainState(models={"model": self.model}, optimizers={"adamw": self.optimizer},
                          schedulers={"cosine": self.scheduler})

    def train_step(self, step: int, clock: Clock) -> dict[str, float]:
        """Epoch ``step``: every global batch is split over the ranks (rank r takes rows
        r, r + N, ...); each rank's loss is weighted by its share, so that DDP's mean of the
        gradients is the gradient of the whole batch's mean loss."""
        config, rank, world = self.config, self.ctx.rank, self.ctx.world_size
        self.scheduler.T_max = config.epochs  # a resumed run with more epochs: stretch
        t0 = time.perf_counter()
        self.generator.manual_seed(config.seed * 1_000_003 + step)  # resume-exact shuffles
        if world > 1:  # training noise (VRNN draws, dropout): its own stream on every rank
            torch.manual_seed(int(np.random.SeedSequence([config.seed, step, rank])
                                  .generate_state(1)[0]))
        self.model.train()
        t_len = self.train_batch.x.shape[1]
        window = config.window if 0 < config.window < t_len else t_len
        sums: dict[str, float] = {}
        count = 0
        for global_index in _batches(self.train_batch.x.shape[0], config.batch_size,
                                     self.generator):
            if len(global_index) < world:  # a last batch too small to share: all ranks skip
                continue
            index = global_index[rank_rows(len(global_index), self.ctx)]
            batch = self.train_batch.take(index)
            if window < t_len:
                start = int(torch.randint(0, t_len - window + 1, (1,), generator=self.generator))
                batch = batch.window(start, start + window)
            parts = self.net(batch.x, batch.z, batch.mask, batch.z_mask)
            loss = parts["loss"] * share_weight(len(index), len(global_index), self.ctx)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(index)
            count += len(index)
        self.scheduler.step()
        metrics = {k: v / max(count, 1) for k, v in sums.items()}
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        metrics["epoch_seconds"] = time.perf_counter() - t0
        return metrics

    def validate(self, step: int) -> dict[str, float]:
        if self.val_batch is None:
            return {}
        return _evaluate_loss(self.model, self.val_batch, 4 * self.config.batch_size)

    def extra_state(self, final: bool) -> dict[str, object]:
        return {**checkpoint_extra(self.model, self.x_norm, self.z_norm), **self.provenance}


def train(config: TrainConfig, progress_bar: bool = True) -> TrainResult:
    """Train ``config.model`` on ``config.data`` (resuming the run folder's run when it holds
    one of the same model and configuration) and return :class:`TrainResult`."""
    result = fit(SequenceJob, config, progress_bar=progress_bar)
    log.info("trained %s to epoch %d of %d (%.1f s this session) -> %s", config.model.name,
             result.step, config.epochs, result.seconds, result.checkpoint)
    return result
