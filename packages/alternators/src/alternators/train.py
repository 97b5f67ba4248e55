"""Training of every model of the package, with checkpoints, resume and run logging.

``train(config)`` reads the data file, standardises observations (and latents) with statistics
of the training split, and minimises the model's loss with AdamW, gradient clipping and a cosine
learning-rate schedule.  Every ``checkpoint_every`` epochs a checkpoint holding the config, the
standardisation state and the optimiser state is written to ``<run_dir>/checkpoints``; a run
folder that already holds checkpoints is resumed from the latest one.  Works unchanged under
``torchrun`` (each rank takes a share of every batch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_core.checkpoint import checkpoint_path, latest, load_checkpoint, save_checkpoint
from physml_core.config import from_dict, to_dict
from physml_core.device import seed_everything
from physml_core.distributed import (
    all_reduce_mean,
    barrier,
    init_distributed,
    unwrap_model,
    wrap_model,
)
from physml_core.errors import CheckpointError, ConfigError
from physml_core.logging import RunLogger, default_run_dir, get_logger, progress

from .data.dataset import SequenceData, Standardizer, load_sequences
from .models.base import SequenceModel
from .models.factory import ModelConfig, build_model

__all__ = ["PACKAGE", "LoadedModel", "TrainConfig", "TrainResult", "load_model", "train"]

PACKAGE = "alternators"
log = get_logger("alternators.train")


@dataclass
class TrainConfig:
    """Configuration of ``alternators train``.

    data: HDF5 sequence file.  run_dir: run folder (None: runs/alternators/<timestamp>).
    model: the model's hyper-parameters.  supervised: use the file's latents z when present.
    epochs, batch_size, lr, weight_decay, grad_clip: optimisation (AdamW, cosine schedule).
    window: train on random windows of this many steps (0: whole sequences).
    checkpoint_every: epochs between checkpoints; keep_checkpoints: how many are kept.
    """

    data: str = ""
    run_dir: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    supervised: bool = True
    epochs: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    window: int = 0
    checkpoint_every: int = 5
    keep_checkpoints: int = 2
    device: str = "auto"
    seed: int = 0
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("epochs, batch_size and checkpoint_every must be at least 1")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.window < 0:
            raise ValueError("need lr > 0 and non-negative weight_decay, grad_clip, window")
        if self.keep_checkpoints < 1:
            raise ValueError("keep_checkpoints must be at least 1")


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    epochs_done: int
    seconds_per_epoch: float
    metrics: dict[str, float]


@dataclass
class LoadedModel:
    """A trained model with what is needed to use it on raw data."""

    model: SequenceModel
    config: TrainConfig
    x_norm: Standardizer
    z_norm: Standardizer | None
    checkpoint: Path
    step: int

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def supervised(self) -> bool:
        return self.z_norm is not None


def _model_dims(data: SequenceData, config: TrainConfig) -> tuple[int, int, bool]:
    supervised = config.supervised and data.z is not None
    latent_dim = data.latent_dim if supervised else config.model.latent_dim
    return data.obs_dim, int(latent_dim), supervised


def _save(path: Path, model: SequenceModel, optimizer: Any, scheduler: Any, epoch: int,
          config: TrainConfig, x_norm: Standardizer, z_norm: Standardizer | None) -> Path:
    extra = {
        "x_norm": x_norm.state(),
        "z_norm": None if z_norm is None else z_norm.state(),
        "obs_dim": model.obs_dim,
        "latent_dim": model.latent_dim,
    }
    return save_checkpoint(path, package=PACKAGE, model_name=model.name, model=model,
                           optimizer=optimizer, scheduler=scheduler, step=epoch,
                           config=to_dict(config), extra=extra)


def _prune(run_dir: Path, keep: int) -> None:
    folder = run_dir / "checkpoints"
    files = sorted(folder.glob("ckpt_*.pt"))
    for old in files[:-keep]:
        old.unlink(missing_ok=True)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint (file or run folder) written by :func:`train`."""
    ckpt = load_checkpoint(path, package=PACKAGE)
    try:
        config = from_dict(TrainConfig, dict(ckpt.config or {}))
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.path}: stored config is not a training config ({exc})") \
            from None
    extra = ckpt.extra
    model = build_model(config.model, int(extra["obs_dim"]), int(extra["latent_dim"]))
    if model.name != ckpt.model_name:
        raise CheckpointError(f"{ckpt.path}: model name {ckpt.model_name!r} does not match its "
                              f"config ({model.name!r})")
    ckpt.restore(model=model, rng=False)
    model.to(device).eval()
    z_state = extra.get("z_norm")
    return LoadedModel(
        model=model, config=config, x_norm=Standardizer.from_state(extra["x_norm"]),
        z_norm=None if z_state is None else Standardizer.from_state(z_state),
        checkpoint=ckpt.path, step=ckpt.step,
    )


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


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


def _evaluate_loss(model: SequenceModel, data: Batch, batch_size: int) -> dict[str, float]:
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


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.model`` on ``config.data``; resume if the run folder has checkpoints."""
    ctx = init_distributed(config.device)
    device = ctx.device
    data = load_sequences(config.data)
    train_set = data.subset("train")
    try:
        val_set: SequenceData | None = data.subset("val")
    except ValueError:
        val_set = None
    obs_dim, latent_dim, supervised = _model_dims(data, config)
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(PACKAGE)
    config.run_dir = str(run_dir)
    seed_everything(config.seed + ctx.rank)

    x_norm = Standardizer.fit(train_set.x, train_set.mask)
    z_norm = Standardizer.fit(train_set.z, train_set.z_mask) if supervised else None
    model = build_model(config.model, obs_dim, latent_dim).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs,
                                                           eta_min=config.lr * 0.02)
    start_epoch = 0
    resume = latest(run_dir)
    if resume is not None:
        ckpt = load_checkpoint(resume, package=PACKAGE, model_name=model.name)
        stored = dict(ckpt.config or {})
        if stored.get("model") != to_dict(config.model):
            raise CheckpointError(f"{resume}: the run folder holds a {ckpt.model_name} with other "
                                  "hyper-parameters; use another --run-dir")
        ckpt.restore(model=model, optimizer=optimizer, scheduler=scheduler, rng=True)
        scheduler.T_max = config.epochs  # more epochs than first planned: stretch the schedule
        x_norm = Standardizer.from_state(ckpt.extra["x_norm"])
        if ckpt.extra.get("z_norm") is not None:
            z_norm = Standardizer.from_state(ckpt.extra["z_norm"])
        start_epoch = ckpt.step
        log.info("resuming %s from %s (epoch %d)", model.name, resume, start_epoch)

    def tensors(ds: SequenceData) -> Batch:
        x = torch.from_numpy(x_norm.transform(ds.x)).to(device)
        z = None if z_norm is None or ds.z is None else torch.from_numpy(
            z_norm.transform(ds.z)).to(device)
        mask = None if ds.mask is None else torch.from_numpy(ds.mask).to(device)
        z_mask = None if z is None or ds.z_mask is None else torch.from_numpy(
            ds.z_mask).to(device)
        return Batch(x, z, mask, z_mask)

    train_batch = tensors(train_set)
    val_batch = tensors(val_set) if val_set is not None else None
    x_train = train_batch.x
    net = wrap_model(model, ctx)
    generator = torch.Generator()

    checkpoint = resume
    epoch_times: list[float] = []
    metrics: dict[str, float] = {}
    t_len = x_train.shape[1]
    window = config.window if 0 < config.window < t_len else t_len
    with RunLogger(run_dir, config=config, tensorboard=config.tensorboard,
                   enabled=ctx.is_main) as run_log:
        bar = progress(range(start_epoch, config.epochs), total=config.epochs,
                       desc=f"train {model.name}", initial=start_epoch, disable=None)
        for epoch in bar:
            t0 = time.perf_counter()
            generator.manual_seed(config.seed * 1_000_003 + epoch)  # resume-exact shuffles
            model.train()
            sums: dict[str, float] = {}
            count = 0
            for index in _batches(x_train.shape[0], config.batch_size, generator):
                index = index[ctx.rank :: ctx.world_size]
                if index.numel() == 0:
                    continue
                batch = train_batch.take(index)
                if window < t_len:
                    start = int(torch.randint(0, t_len - window + 1, (1,), generator=generator))
                    batch = batch.window(start, start + window)
                parts = net(batch.x, batch.z, batch.mask, batch.z_mask)
                optimizer.zero_grad(set_to_none=True)
                parts["loss"].backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(index)
                count += len(index)
            scheduler.step()
            elapsed = time.perf_counter() - t0
            epoch_times.append(elapsed)
            metrics = {f"train/{k}": all_reduce_mean(v / max(count, 1), ctx)
                       for k, v in sums.items()}
            if val_batch is not None:
                metrics.update({f"val/{k}": v for k, v in
                                _evaluate_loss(model, val_batch, 4 * config.batch_size).items()})
            metrics["lr"] = optimizer.param_groups[0]["lr"]
            metrics["epoch_seconds"] = elapsed
            if not all(math.isfinite(v) for v in metrics.values()):
                raise FloatingPointError(f"training diverged at epoch {epoch + 1}: {metrics}; "
                                         "lower --lr")
            run_log.log_scalars(epoch + 1, metrics)
            bar.set_postfix(loss=f"{metrics['train/loss']:.4f}")
            done = epoch + 1
            if ctx.is_main and (done % config.checkpoint_every == 0 or done == config.epochs):
                checkpoint = _save(checkpoint_path(run_dir, done), model, optimizer, scheduler,
                                   done, config, x_norm, z_norm)
                _prune(run_dir, config.keep_checkpoints)
            barrier(ctx)
        bar.close()
    if checkpoint is None or latest(run_dir) is None:
        checkpoint = _save(checkpoint_path(run_dir, config.epochs), unwrap_model(net), optimizer,
                           scheduler, config.epochs, config, x_norm, z_norm)
    checkpoint = latest(run_dir) or checkpoint
    per_epoch = float(np.mean(epoch_times)) if epoch_times else 0.0
    log.info("trained %s for %d epochs (%.2f s/epoch) -> %s", model.name, config.epochs,
             per_epoch, checkpoint)
    return TrainResult(run_dir=run_dir, checkpoint=checkpoint, epochs_done=config.epochs,
                       seconds_per_epoch=per_epoch, metrics=metrics)
