"""Training jobs: the CVAE on (run, module) images and the latent LSTM on latent sequences.

Both run on :func:`physml_core.training.fit`, which owns the run folder, the resume policy,
checkpoints, logs, the time limit and DDP; a step is one epoch.  Here is only the science:
both jobs hold out whole runs (never (run, module) pairs) for validation, the CVAE fits the
image normalisation on the training runs only (one max per projection, the reference's global
min-max without its test-set re-normalisation bug) and streams the file a block of runs at a
time; the LSTM learns next-latent prediction on the CVAE's latent sequences.

Under ``torchrun`` every rank draws the same global batch (and the same reparameterisation and
dropout noise for it) and trains on its rows ``rank::world_size``; losses are weighted and batch
norm uses the global batch (:mod:`physml_core.parallel`), so N processes give the result of one.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from physml_core.checkpoint import Checkpoint
from physml_core.distributed import wrap_model
from physml_core.logging import get_logger
from physml_core.parallel import rank_rows, share_weight, use_global_batch_norm
from physml_core.provenance import Provenance, to_records
from physml_core.split import holdout_counts
from physml_core.training import Clock, TrainingJob, TrainResult, TrainState, fit

from .artifacts import (
    CVAEFitted,
    LSTMFitted,
    check_compatible,
    encode_latents,
    encode_runs,
    load_cvae,
)
from .config import PACKAGE, CVAETrainConfig, LSTMTrainConfig, require, scheduled_lr
from .data import (
    PhaseSpaceFile,
    file_provenance,
    held_out_runs,
    runs_provenance,
    train_splits,
    trained_runs_in,
)
from .metrics import ssim_per_channel
from .models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig, cvae_loss
from .normalise import Normalizer, iter_blocks

__all__ = [
    "CVAEJob",
    "CVAETrainConfig",
    "LSTMJob",
    "LSTMTrainConfig",
    "next_step_batches",
    "scheduled_lr",
    "train_cvae",
    "train_lstm",
]

log = get_logger(__name__)


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed for epoch ``epoch``'s draws of ``stream`` (the same on every rank and when a
    run is resumed at that epoch)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _used_provenance(f: PhaseSpaceFile, train_runs: npt.NDArray[np.int64],
                     val_runs: npt.NDArray[np.int64]) -> dict[str, object]:
    """Checkpoint extras naming the stream runs (physml_core.provenance) a model trained on
    (``data_provenance``: training then validation runs, as every physml package stores it)
    and validated on (``validation_provenance``); None when the file records no provenance."""
    records = file_provenance(f)
    if records is None:
        log.warning("%s records no provenance: evaluations cannot check that a held-out file "
                    "is independent of this training data", f.path)
        return {"data_provenance": None, "validation_provenance": None}
    train: list[Provenance] = runs_provenance(records, train_runs)
    val: list[Provenance] = runs_provenance(records, val_runs)
    return {"data_provenance": to_records(train + val), "validation_provenance": to_records(val)}


def _settings_stats(settings: npt.NDArray[np.float32] | None, runs: npt.NDArray[np.int64]
                    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    if settings is None or settings.shape[1] == 0:
        raise ValueError("condition_on_settings needs a 'settings' dataset in the data file")
    mean = settings[runs].mean(axis=0)
    std = settings[runs].std(axis=0)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


class CVAEJob(TrainingJob[CVAETrainConfig]):
    """One epoch = every (run, module) image of the training runs once, streamed in blocks of
    ``block_runs`` runs (run order reshuffled per epoch, pairs shuffled inside each block)."""

    package: ClassVar[str] = PACKAGE

    fitted: CVAEFitted
    s_all: torch.Tensor | None
    modules: int
    #: mean normalised training pixel per projection (15,), for ``output_bias="mean"``
    pixel_mean: npt.NDArray[np.float64] | None = None
    provenance: dict[str, object]
    model: CVAE
    net: nn.Module
    optimizer: torch.optim.Optimizer

    @property
    def model_name(self) -> str:
        return "cvae"

    @property
    def total_steps(self) -> int:
        return self.config.epochs

    @property
    def data(self) -> str:
        return require(self.config.data, "data", "the phase-space file to train on")

    def setup(self, resume: Checkpoint | None) -> None:
        cfg = self.config
        with PhaseSpaceFile(self.data) as f:
            if resume is not None:
                self.fitted = CVAEFitted.from_extra(resume.extra, resume.path)
            else:
                train_runs, val_runs = train_splits(f, cfg.val_fraction)
                if cfg.max_train_runs is not None:
                    train_runs = train_runs[:cfg.max_train_runs]
                smean = sstd = None
                if cfg.condition_on_settings:
                    smean, sstd = _settings_stats(f.settings(), train_runs)
                model_cfg = CVAEConfig(
                    resolution=f.resolution, modules=f.modules, latent_dim=cfg.latent_dim,
                    settings_dim=0 if smean is None else len(smean),
                    cond_decoder=cfg.cond_decoder, prior=cfg.prior,
                    base_filters=cfg.base_filters)
                normalizer, self.pixel_mean = Normalizer.fit_with_mean(f, train_runs)
                self.fitted = CVAEFitted(
                    model_config=model_cfg, normalizer=normalizer,
                    train_runs=train_runs, val_runs=val_runs,
                    dataset_id=str(f.attrs.get("dataset_id", "")),
                    train_run_index=f.run_index()[train_runs].astype(np.int64),
                    settings_mean=smean,
                    settings_std=sstd)
            settings = f.settings()
            self.modules = f.modules
            self.provenance = _used_provenance(f, self.fitted.train_runs, self.fitted.val_runs)
        mean, std = self.fitted.settings_mean, self.fitted.settings_std
        self.s_all = None
        if mean is not None and std is not None and settings is not None:
            self.s_all = torch.as_tensor((settings - mean) / std).float()
        self.model = CVAE(self.fitted.model_config)
        if resume is None and cfg.output_bias == "mean" and self.pixel_mean is not None:
            self.model.init_output_bias(self.pixel_mean)  # (a resumed run loads its weights)
        if self.ctx.is_distributed:
            use_global_batch_norm(self.model)
        self.net = wrap_model(self.model, self.ctx)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    def state(self) -> TrainState:
        return TrainState(models={"cvae": self.model}, optimizers={"adam": self.optimizer})

    def train_step(self, step: int, clock: Clock) -> dict[str, float]:
        cfg, ctx, device = self.config, self.ctx, self.ctx.device
        train_runs = self.fitted.train_runs
        gen = np.random.default_rng([cfg.seed, step])
        noise = torch.Generator().manual_seed(_epoch_seed(cfg.seed, step, 1))
        order = train_runs[gen.permutation(len(train_runs))]
        steps_per_epoch = -(-len(train_runs) * self.modules // cfg.batch_size)
        smallest = max(2, ctx.world_size)  # every rank needs a row; batch norm two in all
        lr = scheduled_lr(cfg, step / cfg.epochs)
        sums = np.zeros(3)  # this rank's loss, reconstruction and KL, summed over its images
        t0, seen, batches = time.perf_counter(), 0, 0
        self.net.train()
        with PhaseSpaceFile(self.data) as f:
            for pos, block in iter_blocks(f, order, self.fitted.normalizer, cfg.block_runs):
                pairs = np.array([(i, m) for i in range(len(pos)) for m in range(self.modules)])
                pairs = pairs[gen.permutation(len(pairs))]
                for lo in range(0, len(pairs), cfg.batch_size):
                    batch = pairs[lo:lo + cfg.batch_size]
                    if len(batch) < smallest:
                        continue
                    lr = scheduled_lr(cfg, (step + min(batches / steps_per_epoch, 1.0))
                                      / cfg.epochs)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    eps, keep = self.model.draw_noise(len(batch), noise)
                    mine = rank_rows(len(batch), ctx)
                    idx = batch[mine]
                    x = block[idx[:, 0], idx[:, 1]].to(device)
                    mod = torch.as_tensor(idx[:, 1], device=device)
                    s = None if self.s_all is None else \
                        self.s_all[order[pos[idx[:, 0]]]].to(device)
                    out = self.net(x, mod, s, eps=eps[mine].to(device),
                                   keep=keep[mine].to(device))
                    loss, rec, kl = cvae_loss(out, x, cfg.beta)
                    self.optimizer.zero_grad(set_to_none=True)
                    (loss * share_weight(len(idx), len(batch), ctx)).backward()
                    self.optimizer.step()
                    sums += len(idx) * np.array([loss.item(), rec.item(), kl.item()])
                    seen, batches = seen + len(batch), batches + 1
                del block
        # fit averages over ranks: rank sums x world / global count -> the global means
        per = ctx.world_size / max(seen, 1)
        metrics = {"loss": sums[0] * per, "recon": sums[1] * per, "kl": sums[2] * per,
                   "images_per_s": seen / max(time.perf_counter() - t0, 1e-9), "lr": lr}
        if ctx.is_main:
            log.info("cvae epoch %d: %s", step + 1,
                     ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        return metrics

    def validate(self, step: int) -> dict[str, float]:
        with PhaseSpaceFile(self.data) as f:
            return _val_cvae(self.model, f, self.fitted.val_runs, self.fitted.normalizer,
                             self.s_all, self.config.beta, self.ctx.device,
                             self.config.block_runs)

    def extra_state(self, final: bool) -> dict[str, object]:
        if final:  # the min/max latent box of the reference sampler
            with PhaseSpaceFile(self.data) as f:
                self.fitted.latents_min, self.fitted.latents_max = _latent_box(
                    self.model, f, self.fitted.train_runs, self.fitted.normalizer, self.s_all,
                    self.ctx.device, self.config.block_runs)
        else:
            self.fitted.latents_min = self.fitted.latents_max = None
        return {**self.fitted.to_extra(), **self.provenance}


def _latent_box(model: CVAE, f: PhaseSpaceFile, runs: npt.NDArray[np.int64], norm: Normalizer,
                s_all: torch.Tensor | None, device: torch.device, block_runs: int
                ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Per-module min and max (modules, latent) of the latent means of ``runs``."""
    lo_box: torch.Tensor | None = None
    hi_box: torch.Tensor | None = None
    for pos, block in iter_blocks(f, runs, norm, block_runs):
        z = encode_latents(model, block, runs[pos], s_all, device)
        zmin, zmax = z.amin(dim=0), z.amax(dim=0)
        lo_box = zmin if lo_box is None else torch.minimum(lo_box, zmin)
        hi_box = zmax if hi_box is None else torch.maximum(hi_box, zmax)
    if lo_box is None or hi_box is None:
        raise ValueError("no training runs to compute the latent box on")
    return lo_box.numpy(), hi_box.numpy()


@torch.no_grad()
def _val_cvae(model: CVAE, f: PhaseSpaceFile, val_runs: npt.NDArray[np.int64],
              norm: Normalizer, s_all: torch.Tensor | None, beta: float, device: torch.device,
              block_runs: int) -> dict[str, float]:
    """Loss, MSE and SSIM (data range 1) per image of the held-out runs."""
    model.eval()
    tot, mse, ssim, n = 0.0, 0.0, 0.0, 0
    for pos, block in iter_blocks(f, val_runs, norm, block_runs):
        r, m = block.shape[:2]
        flat = block.reshape(r * m, *block.shape[2:])
        mods = torch.arange(m).repeat(r)
        run_of = val_runs[pos][np.repeat(np.arange(r), m)]
        for lo in range(0, r * m, 64):
            x = flat[lo:lo + 64].to(device)
            s = None if s_all is None else s_all[run_of[lo:lo + 64]].to(device)
            out = model(x, mods[lo:lo + 64].to(device), s)
            loss, _, _ = cvae_loss(out, x, beta)
            rec = torch.sigmoid(out["logits"])
            tot += loss.item() * len(x)
            mse += F.mse_loss(rec, x, reduction="sum").item() / x[0].numel()
            ssim += float(ssim_per_channel(rec.cpu(), x.cpu()).mean(dim=1).sum())
            n += len(x)
    return {"loss": tot / n, "mse": mse / n, "ssim": ssim / n}


def train_cvae(config: CVAETrainConfig, progress_bar: bool = True) -> TrainResult:
    """Train the CVAE (see :class:`CVAEJob`); checkpoints in ``result.run_dir/checkpoints``."""
    require(config.data, "data", "the phase-space file to train on")
    return fit(CVAEJob, config, progress_bar=progress_bar)


def next_step_batches(z: torch.Tensor, lengths: torch.Tensor | None = None,
                      min_length: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                    torch.Tensor]:
    """Teacher-forcing pairs of latent sequences z (R, M, D) with true lengths (R,) (default M).

    Returns inputs z[:, :-1], their lengths (length - 1), targets z[:, 1:] and a loss mask
    (R, M-1) that is true on real steps t >= min_length - 1 (the prediction of z_{t+1} from at
    least ``min_length`` latents).  One pass of the LSTM over these inputs gives the prediction
    after every prefix, replacing the reference's explicit prefix copies.
    """
    r, m, _ = z.shape
    lengths = torch.full((r,), m, dtype=torch.int64) if lengths is None else lengths.long()
    if m - 1 < min_length or (lengths - 1 < min_length).all():
        raise ValueError(f"need more than min_length={min_length} modules to train the LSTM")
    inp_len = (lengths - 1).clamp(min=1)
    steps = torch.arange(m - 1)[None, :]
    mask = (steps < (lengths - 1)[:, None]) & (steps >= min_length - 1)
    return z[:, :-1], inp_len, z[:, 1:], mask


class _TeacherForced(nn.Module):
    """The LSTM's training pass as ``forward`` (what DDP wraps)."""

    def __init__(self, lstm: LatentLSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.lstm.predict_steps(seq, lengths)


class LSTMJob(TrainingJob[LSTMTrainConfig]):
    """One epoch = every training run's latent sequence once, in shuffled batches of runs.

    The training runs are the CVAE's training runs less the last ``calibration_fraction`` of
    them (the calibration runs, recorded in the checkpoint for the forecast uncertainty of
    :mod:`clarm.evaluate`); validation is the rollout on the CVAE's held-out runs."""

    package: ClassVar[str] = PACKAGE

    fitted: LSTMFitted
    provenance: dict[str, object]
    seqs: torch.Tensor
    lens: torch.Tensor
    tgts: torch.Tensor
    mask: torch.Tensor
    z_val: torch.Tensor | None
    model: LatentLSTM
    net: nn.Module
    optimizer: torch.optim.Optimizer

    @property
    def model_name(self) -> str:
        return "lstm"

    @property
    def total_steps(self) -> int:
        return self.config.epochs

    def setup(self, resume: Checkpoint | None) -> None:
        cfg = self.config
        cvae = load_cvae(require(cfg.cvae, "cvae", "the trained CVAE"), device="cpu")
        with PhaseSpaceFile(require(cfg.data, "data", "the phase-space file")) as f:
            check_compatible(cvae, f)
            held = held_out_runs(cvae, f)
            # the CVAE's training runs, found in this file by run number (so another file of
            # its simulation, e.g. the merged shards, works too)
            cvae_runs = np.setdiff1d(trained_runs_in(cvae, f), held)
            if len(cvae_runs) == 0:
                raise ValueError(f"{f.path} holds none of the CVAE's training runs; train the "
                                 "LSTM on the file (or a file of the simulation) the CVAE "
                                 "was trained on")
            # calibration runs: the last of the CVAE's training runs (physml's held-out rule),
            # never seen by the LSTM, never evaluation runs
            n_fit = holdout_counts(len(cvae_runs), cfg.calibration_fraction)[0]
            train_runs, cal_runs = cvae_runs[:n_fit], cvae_runs[n_fit:]
            z_train = encode_runs(cvae, f, train_runs)
            self.z_val = encode_runs(cvae, f, held) if len(held) else None
            self.provenance = _used_provenance(f, train_runs, held)
            cal_numbers = f.run_index()[cal_runs].astype(np.int64)
        if resume is not None:
            self.fitted = LSTMFitted.from_extra(resume.extra, resume.path)
        else:
            self.fitted = LSTMFitted(
                model_config=LSTMConfig(latent_dim=z_train.shape[2], hidden=cfg.hidden,
                                        layers=cfg.layers, modules=z_train.shape[1]),
                z_mean=z_train.mean(dim=(0, 1)).numpy(),
                z_std=z_train.std(dim=(0, 1)).clamp_min(1e-6).numpy(), cvae_path=str(cvae.path),
                calibration_run_numbers=cal_numbers)
        zs = (z_train - torch.from_numpy(self.fitted.z_mean)) / torch.from_numpy(self.fitted.z_std)
        self.seqs, self.lens, self.tgts, self.mask = next_step_batches(
            zs, min_length=cfg.min_length)
        self.model = LatentLSTM(self.fitted.model_config)
        self.net = wrap_model(_TeacherForced(self.model), self.ctx)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    def state(self) -> TrainState:
        return TrainState(models={"lstm": self.model}, optimizers={"adam": self.optimizer})

    def train_step(self, step: int, clock: Clock) -> dict[str, float]:
        cfg, ctx, device = self.config, self.ctx, self.ctx.device
        dim = self.seqs.shape[2]
        perm = torch.randperm(len(self.seqs),
                              generator=torch.Generator().manual_seed(_epoch_seed(cfg.seed,
                                                                                  step, 0)))
        total = 0.0  # this rank's squared error summed over its steps, per latent dimension
        self.net.train()
        for lo in range(0, len(perm), cfg.batch_size):
            batch = perm[lo:lo + cfg.batch_size]
            count = int(self.mask[batch].sum()) * dim  # squared errors in the global batch
            mine, weight = batch[rank_rows(len(batch), ctx)], 1.0
            if len(mine) == 0:  # a batch smaller than the world: join DDP's all-reduce with 0
                mine, weight = batch[:1], 0.0
            pred = self.net(self.seqs[mine].to(device), self.lens[mine])
            sel = self.mask[mine].to(device)
            sse = (pred[sel] - self.tgts[mine].to(device)[sel]).square().sum()
            self.optimizer.zero_grad(set_to_none=True)
            (sse * (weight * ctx.world_size / max(count, 1))).backward()
            self.optimizer.step()
            total += weight * sse.item() / dim
        return {"loss": total * ctx.world_size / max(int(self.mask.sum()), 1)}

    def validate(self, step: int) -> dict[str, float]:
        """Rollout MSE (standardised latents) on the held-out runs from 4 observed modules."""
        observed = min(4, self.seqs.shape[1])
        if self.z_val is None or observed < 1:
            return {}
        self.model.eval()
        mean = torch.from_numpy(self.fitted.z_mean)
        std = torch.from_numpy(self.fitted.z_std)
        zv = ((self.z_val - mean) / std).to(self.ctx.device)
        roll = self.model.rollout(zv[:, :observed], zv.shape[1])
        return {"rollout_mse": F.mse_loss(roll[:, observed:], zv[:, observed:]).item()}

    def extra_state(self, final: bool) -> dict[str, object]:
        return {**self.fitted.to_extra(), **self.provenance}


def train_lstm(config: LSTMTrainConfig, progress_bar: bool = True) -> TrainResult:
    """Train the latent LSTM on latent sequences of the CVAE's training runs."""
    require(config.data, "data", "the phase-space file")
    require(config.cvae, "cvae", "the trained CVAE")
    return fit(LSTMJob, config, progress_bar=progress_bar)
