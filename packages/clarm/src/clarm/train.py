"""Training jobs: the CVAE on (run, module) images and the latent LSTM on latent sequences.

Both jobs hold out runs (never (run, module) pairs) for validation, fit the image normalisation
on the training runs only (one max per projection, the reference's global min-max without its
test-set re-normalisation bug), write ``config.json``, TensorBoard events and ``metrics.jsonl``
through :class:`physml_core.logging.RunLogger`, save a checkpoint every epoch and resume from
the newest checkpoint of ``run_dir``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from physml_core.checkpoint import checkpoint_path, latest, load_checkpoint, save_checkpoint
from physml_core.config import from_dict
from physml_core.device import resolve_device, seed_everything
from physml_core.errors import CheckpointError
from physml_core.logging import RunLogger, default_run_dir, get_logger, progress

from .data import PhaseSpaceFile
from .metrics import ssim_per_channel
from .models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig, cvae_loss

__all__ = [
    "PACKAGE",
    "CVAETrainConfig",
    "LSTMTrainConfig",
    "LoadedCVAE",
    "LoadedLSTM",
    "Normalizer",
    "encode_runs",
    "load_cvae",
    "load_lstm",
    "next_step_batches",
    "split_runs",
    "train_cvae",
    "train_lstm",
]

PACKAGE = "clarm"
log = get_logger(__name__)


@dataclass
class CVAETrainConfig:
    """``clarm train cvae``: paths, model and optimisation settings."""

    data: str = ""
    run_dir: str = ""
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    lr_min: float = 1e-5
    schedule: str = "cosine"
    beta: float = 1.0
    latent_dim: int = 8
    cond_decoder: bool = True
    condition_on_settings: bool = False
    prior: str = "conditional"
    base_filters: int = 32
    val_fraction: float = 0.15
    max_train_runs: int = 0
    block_runs: int = 16
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.block_runs < 1:
            raise ValueError(f"block_runs must be >= 1, got {self.block_runs}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"lr_min must be in [0, lr], got {self.lr_min}")


def scheduled_lr(config: CVAETrainConfig, progress_fraction: float) -> float:
    """Learning rate at ``progress_fraction`` (0..1) of training: cosine decay from ``lr`` to
    ``lr_min`` (stateless, so a resumed run continues on the same curve)."""
    if config.schedule == "constant":
        return config.lr
    frac = min(max(progress_fraction, 0.0), 1.0)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1.0 + math.cos(math.pi * frac))


@dataclass
class LSTMTrainConfig:
    """``clarm train lstm``: latent sequences from a trained CVAE."""

    data: str = ""
    cvae: str = ""
    run_dir: str = ""
    epochs: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    hidden: int = 64
    layers: int = 2
    min_length: int = 1
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.min_length < 1:
            raise ValueError(f"min_length must be >= 1, got {self.min_length}")


class Normalizer:
    """Per-projection scale fitted on training images: x / max -> [0, 1]."""

    def __init__(self, scale: np.ndarray) -> None:
        scale = np.asarray(scale, dtype=np.float32).reshape(-1)
        if scale.shape != (15,) or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("normaliser scale must be 15 positive finite values")
        self.scale = scale

    @classmethod
    def fit(cls, f: PhaseSpaceFile, runs: np.ndarray, batch: int = 8) -> Normalizer:
        peak = np.zeros(15, np.float32)
        for lo in range(0, len(runs), batch):
            imgs = f.images(runs[lo:lo + batch])
            peak = np.maximum(peak, imgs.max(axis=(0, 1, 3, 4)))
        return cls(np.where(peak > 0, peak, 1.0))

    def __call__(self, images: np.ndarray | torch.Tensor) -> Any:
        scale = self.scale.reshape(15, 1, 1)
        if isinstance(images, torch.Tensor):
            return (images / torch.as_tensor(scale, device=images.device)).clamp(0.0, 1.0)
        return np.clip(images / scale, 0.0, 1.0)

    def inverse(self, images: np.ndarray) -> np.ndarray:
        return images * self.scale.reshape(15, 1, 1)


def split_runs(num_runs: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random split of run numbers into (train, held-out), both sorted; at least one each."""
    if num_runs < 2:
        raise ValueError(f"need at least 2 runs to hold some out, the file has {num_runs}")
    perm = np.random.default_rng(seed).permutation(num_runs)
    n_val = min(num_runs - 1, max(1, round(val_fraction * num_runs)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _settings_stats(settings: np.ndarray | None, runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if settings is None or settings.shape[1] == 0:
        raise ValueError("condition_on_settings needs a 'settings' dataset in the data file")
    mean = settings[runs].mean(axis=0)
    std = settings[runs].std(axis=0)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


@dataclass
class LoadedCVAE:
    """A CVAE restored from a checkpoint with everything training knew."""

    model: CVAE
    normalizer: Normalizer
    train_runs: np.ndarray
    val_runs: np.ndarray
    dataset_id: str
    settings_mean: np.ndarray | None
    settings_std: np.ndarray | None
    latents_min: np.ndarray
    latents_max: np.ndarray
    config: dict
    path: Path

    def settings_tensor(self, settings: np.ndarray | None, rows: int) -> torch.Tensor | None:
        if self.model.config.settings_dim == 0:
            return None
        if settings is None:
            raise ValueError("this CVAE is conditioned on settings; the data file has none")
        return torch.as_tensor((settings - self.settings_mean) / self.settings_std).float()


def iter_blocks(f: PhaseSpaceFile, runs: np.ndarray, norm: Normalizer,
                block_runs: int) -> Any:
    """Yield (run positions, normalised images (b, M, 15, H, W) tensor) for consecutive
    blocks of ``runs`` read from the file (only one block is in memory at a time)."""
    for lo in range(0, len(runs), block_runs):
        pos = np.arange(lo, min(len(runs), lo + block_runs))
        yield pos, torch.from_numpy(np.ascontiguousarray(norm(f.images(runs[pos]))))


def train_splits(f: PhaseSpaceFile, val_fraction: float, seed: int) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(train, validation) runs of ``f``: a random split of the runs outside the official
    test split (imported public data keeps its test runs out of training entirely)."""
    split = f.split()
    pool = np.arange(f.runs) if split is None else np.flatnonzero(split == 0)
    tr, va = split_runs(len(pool), val_fraction, seed)
    return pool[tr], pool[va]


def _resume(run_dir: Path, package_model: str, config_obj: Any) -> Any:
    ckpt_file = latest(run_dir)
    if ckpt_file is None:
        return None
    ckpt = load_checkpoint(ckpt_file, package=PACKAGE, model_name=package_model)
    log.info("resuming from %s (epoch %d)", ckpt_file, ckpt.step)
    return ckpt


def train_cvae(config: CVAETrainConfig) -> Path:
    """Train the CVAE; returns the run folder (checkpoints in ``run_dir/checkpoints``)."""
    config.validate()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(PACKAGE, "cvae")
    f = PhaseSpaceFile(config.data)
    try:
        train_runs, val_runs = train_splits(f, config.val_fraction, config.seed)
        if config.max_train_runs:
            train_runs = train_runs[:config.max_train_runs]
        norm = Normalizer.fit(f, train_runs)
        settings = f.settings()
        smean = sstd = None
        if config.condition_on_settings:
            smean, sstd = _settings_stats(settings, train_runs)
        modules, resolution = f.modules, f.resolution
        data_id = str(f.attrs.get("dataset_id", ""))
        s_all = None
        if smean is not None:
            s_all = torch.as_tensor((settings - smean) / sstd).float()
        model_cfg = CVAEConfig(resolution=resolution, modules=modules,
                               latent_dim=config.latent_dim,
                               settings_dim=0 if s_all is None else s_all.shape[1],
                               cond_decoder=config.cond_decoder, prior=config.prior,
                               base_filters=config.base_filters)
        model = CVAE(model_cfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        start_epoch = 0
        ckpt = _resume(run_dir, "cvae", config)
        if ckpt is not None:
            ckpt.restore(model=model, optimizer=opt)
            start_epoch = ckpt.step
        extra_base = {"normalizer_scale": norm.scale, "train_runs": train_runs,
                      "val_runs": val_runs, "dataset_id": data_id,
                      "model_config": asdict(model_cfg)}
        if smean is not None:
            extra_base.update(settings_mean=smean, settings_std=sstd)
        if ckpt is not None and start_epoch >= config.epochs and "latents_min" not in ckpt.extra:
            # an interrupted run finished by resuming with --epochs <= done: add the latent box
            extra = dict(extra_base)
            extra["latents_min"], extra["latents_max"] = _latent_box(
                model, f, train_runs, norm, s_all, device, config.block_runs)
            save_checkpoint(checkpoint_path(run_dir, start_epoch), package=PACKAGE,
                            model_name="cvae", model=model, optimizer=opt, step=start_epoch,
                            config=config, extra=extra)
        steps_per_epoch = -(-len(train_runs) * modules // config.batch_size)
        with RunLogger(run_dir, config=config) as logger:
            for epoch in range(start_epoch, config.epochs):
                model.train()
                gen = np.random.default_rng([config.seed, epoch])
                order = train_runs[gen.permutation(len(train_runs))]
                t0, tot, tot_rec, tot_kl, seen, step = time.perf_counter(), 0.0, 0.0, 0.0, 0, 0
                lr = scheduled_lr(config, epoch / config.epochs)
                bar = progress(total=steps_per_epoch, desc=f"cvae {epoch + 1}")
                # stream blocks of runs; shuffle the (run, module) pairs inside each block
                for pos, block in iter_blocks(f, order, norm, config.block_runs):
                    pairs = np.array([(i, m) for i in range(len(pos)) for m in range(modules)])
                    pairs = pairs[gen.permutation(len(pairs))]
                    for lo in range(0, len(pairs), config.batch_size):
                        idx = pairs[lo:lo + config.batch_size]
                        if len(idx) < 2:
                            continue
                        frac = (epoch + min(step / steps_per_epoch, 1.0)) / config.epochs
                        lr = scheduled_lr(config, frac)
                        for group in opt.param_groups:
                            group["lr"] = lr
                        x = block[idx[:, 0], idx[:, 1]].to(device)
                        mod = torch.as_tensor(idx[:, 1], device=device)
                        s = None if s_all is None else s_all[order[pos[idx[:, 0]]]].to(device)
                        out = model(x, mod, s)
                        loss, rec, kl = cvae_loss(out, x, config.beta)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        n = len(idx)
                        tot, tot_rec, tot_kl, seen = (tot + loss.item() * n,
                                                      tot_rec + rec.item() * n,
                                                      tot_kl + kl.item() * n, seen + n)
                        step += 1
                        bar.update(1)
                    del block
                bar.close()
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                val = _val_cvae(model, f, val_runs, norm, s_all, config.beta, device,
                                config.block_runs)
                scalars = {"loss": tot / max(seen, 1), "recon": tot_rec / max(seen, 1),
                           "kl": tot_kl / max(seen, 1), "images_per_s": rate, "lr": lr, **val}
                logger.log_scalars(epoch + 1, scalars)
                log.info("epoch %d: %s", epoch + 1,
                         ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
                extra = dict(extra_base)
                if epoch + 1 == config.epochs:  # the min/max latent box of the reference sampler
                    extra["latents_min"], extra["latents_max"] = _latent_box(
                        model, f, train_runs, norm, s_all, device, config.block_runs)
                save_checkpoint(checkpoint_path(run_dir, epoch + 1), package=PACKAGE,
                                model_name="cvae", model=model, optimizer=opt, step=epoch + 1,
                                config=config, extra=extra)
    finally:
        f.close()
    return run_dir


@torch.no_grad()
def _encode(model: CVAE, x: torch.Tensor, runs: np.ndarray, s_all: torch.Tensor | None,
            device: torch.device, batch: int = 64) -> torch.Tensor:
    """Latent means (R, M, D) of images x (R, M, 15, H, W)."""
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


def _latent_box(model: CVAE, f: PhaseSpaceFile, runs: np.ndarray, norm: Normalizer,
                s_all: torch.Tensor | None, device: torch.device,
                block_runs: int) -> tuple[np.ndarray, np.ndarray]:
    lo_box = hi_box = None
    for pos, block in iter_blocks(f, runs, norm, block_runs):
        z = _encode(model, block, runs[pos], s_all, device)
        zmin, zmax = z.amin(dim=0), z.amax(dim=0)
        lo_box = zmin if lo_box is None else torch.minimum(lo_box, zmin)
        hi_box = zmax if hi_box is None else torch.maximum(hi_box, zmax)
    return lo_box.numpy(), hi_box.numpy()


@torch.no_grad()
def _val_cvae(model: CVAE, f: PhaseSpaceFile, val_runs: np.ndarray, norm: Normalizer,
              s_all: torch.Tensor | None, beta: float, device: torch.device,
              block_runs: int) -> dict[str, float]:
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
    return {"val_loss": tot / n, "val_mse": mse / n, "val_ssim": ssim / n}


def load_cvae(path: str | Path, device: str | torch.device = "cpu") -> LoadedCVAE:
    """Restore a CVAE checkpoint (file or run folder); refuses other packages/models."""
    ckpt = load_checkpoint(path, package=PACKAGE, model_name="cvae")
    extra = ckpt.extra
    try:
        model_cfg = from_dict(CVAEConfig, dict(extra["model_config"]))
        model = CVAE(model_cfg)
        ckpt.restore(model=model, rng=False)
        norm = Normalizer(np.asarray(extra["normalizer_scale"]))
    except KeyError as exc:
        raise CheckpointError(f"{ckpt.path}: CVAE checkpoint lacks {exc}") from None
    # channels-last convolutions are about 2x faster on CPU (oneDNN) for inference
    model.to(resolve_device(device), memory_format=torch.channels_last).eval()

    def arr(key: str) -> np.ndarray | None:
        return None if key not in extra else np.asarray(extra[key])

    return LoadedCVAE(model=model, normalizer=norm, train_runs=arr("train_runs"),
                      val_runs=arr("val_runs"), dataset_id=str(extra.get("dataset_id", "")),
                      settings_mean=arr("settings_mean"), settings_std=arr("settings_std"),
                      latents_min=arr("latents_min"), latents_max=arr("latents_max"),
                      config=dict(ckpt.config or {}), path=ckpt.path)


def encode_runs(cvae: LoadedCVAE, f: PhaseSpaceFile, runs: np.ndarray,
                modules: int | None = None) -> torch.Tensor:
    """Latent means (R, modules, D) of the first ``modules`` modules of ``runs`` of ``f``."""
    check_compatible(cvae, f)
    modules = f.modules if modules is None else modules
    device = next(cvae.model.parameters()).device
    settings = f.settings()
    s_all = cvae.settings_tensor(settings, f.runs)
    out = []
    for lo in range(0, len(runs), 8):
        x = torch.from_numpy(cvae.normalizer(f.images(runs[lo:lo + 8])[:, :modules]))
        out.append(_encode(cvae.model, x, runs[lo:lo + 8], s_all, device))
    return torch.cat(out) if out else torch.zeros(0, modules, cvae.model.config.latent_dim)


def check_compatible(cvae: LoadedCVAE, f: PhaseSpaceFile) -> None:
    """Raise ``ValueError`` when ``f`` does not fit the model (modules, resolution)."""
    cfg = cvae.model.config
    if f.resolution != cfg.resolution:
        raise ValueError(f"{f.path}: images are {f.resolution}x{f.resolution}, the CVAE was "
                         f"trained on {cfg.resolution}x{cfg.resolution}")
    if f.modules != cfg.modules:
        raise ValueError(f"{f.path}: {f.modules} modules, the CVAE was trained on {cfg.modules}")


def held_out_runs(cvae: LoadedCVAE, f: PhaseSpaceFile) -> np.ndarray:
    """Runs of ``f`` never used in training: the official test split of imported public data,
    else the held-out split if ``f`` is the training file, all runs of another simulation."""
    same = cvae.dataset_id and str(f.attrs.get("dataset_id", "")) == cvae.dataset_id
    split = f.split()
    if same and split is not None and (split == 1).any():
        return np.flatnonzero(split == 1)  # the official test split of imported public data
    if same and f.runs == len(cvae.train_runs) + len(cvae.val_runs):
        return np.asarray(cvae.val_runs, dtype=np.int64)
    if same:
        index = f.run_index()
        return np.flatnonzero(~np.isin(index, cvae.train_runs))
    return np.arange(f.runs)


@dataclass
class LoadedLSTM:
    model: LatentLSTM
    z_mean: np.ndarray
    z_std: np.ndarray
    cvae_path: str
    path: Path


def load_lstm(path: str | Path, device: str | torch.device = "cpu") -> LoadedLSTM:
    """Restore a latent-LSTM checkpoint (file or run folder)."""
    ckpt = load_checkpoint(path, package=PACKAGE, model_name="lstm")
    try:
        model = LatentLSTM(from_dict(LSTMConfig, dict(ckpt.extra["model_config"])))
        ckpt.restore(model=model, rng=False)
        z_mean = np.asarray(ckpt.extra["z_mean"], dtype=np.float32)
        z_std = np.asarray(ckpt.extra["z_std"], dtype=np.float32)
    except KeyError as exc:
        raise CheckpointError(f"{ckpt.path}: LSTM checkpoint lacks {exc}") from None
    model.to(resolve_device(device)).eval()
    return LoadedLSTM(model=model, z_mean=z_mean, z_std=z_std,
                      cvae_path=str(ckpt.extra.get("cvae_path", "")), path=ckpt.path)


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


def train_lstm(config: LSTMTrainConfig) -> Path:
    """Train the latent LSTM on latent sequences of the CVAE's training runs."""
    config.validate()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    cvae = load_cvae(config.cvae, device="cpu")
    run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(PACKAGE, "lstm")
    with PhaseSpaceFile(config.data) as f:
        check_compatible(cvae, f)
        train_runs = np.asarray(cvae.train_runs if cvae.dataset_id == str(
            f.attrs.get("dataset_id", "")) else np.arange(f.runs), dtype=np.int64)
        held = held_out_runs(cvae, f)
        train_runs = np.setdiff1d(train_runs, held)
        if len(train_runs) == 0:
            raise ValueError("no training runs left for the LSTM")
        z_train = encode_runs(cvae, f, train_runs)
        z_val = encode_runs(cvae, f, held) if len(held) else None
    z_mean = z_train.mean(dim=(0, 1))
    z_std = z_train.std(dim=(0, 1)).clamp_min(1e-6)
    zs = (z_train - z_mean) / z_std
    seqs, lens, tgts, mask = next_step_batches(zs, min_length=config.min_length)
    model_cfg = LSTMConfig(latent_dim=zs.shape[2], hidden=config.hidden, layers=config.layers,
                           modules=zs.shape[1])
    model = LatentLSTM(model_cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    start = 0
    ckpt = _resume(run_dir, "lstm", config)
    if ckpt is not None:
        ckpt.restore(model=model, optimizer=opt)
        start = ckpt.step
    gen = torch.Generator().manual_seed(config.seed)
    extra = {"model_config": asdict(model_cfg), "z_mean": z_mean.numpy(),
             "z_std": z_std.numpy(), "cvae_path": str(cvae.path)}
    observed = min(4, zs.shape[1] - 1)
    every = max(1, config.epochs // 20)
    with RunLogger(run_dir, config=config) as logger:
        for epoch in range(start, config.epochs):
            model.train()
            perm = torch.randperm(len(seqs), generator=gen)
            tot = 0.0
            for lo in range(0, len(perm), config.batch_size):
                idx = perm[lo:lo + config.batch_size]
                pred = model.predict_steps(seqs[idx].to(device), lens[idx])
                sel = mask[idx].to(device)
                loss = F.mse_loss(pred[sel], tgts[idx].to(device)[sel])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tot += loss.item() * int(sel.sum())
            scalars = {"loss": tot / max(int(mask.sum()), 1)}
            if z_val is not None and observed >= 1:
                model.eval()
                zv = ((z_val - z_mean) / z_std).to(device)
                roll = model.rollout(zv[:, :observed], zv.shape[1])
                scalars["val_rollout_mse"] = F.mse_loss(roll[:, observed:],
                                                        zv[:, observed:]).item()
            logger.log_scalars(epoch + 1, scalars)
            last = epoch + 1 == config.epochs
            if (epoch + 1) % every == 0 or last:
                log.info("lstm epoch %d: %s", epoch + 1,
                         ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
                save_checkpoint(checkpoint_path(run_dir, epoch + 1), package=PACKAGE,
                                model_name="lstm", model=model, optimizer=opt, step=epoch + 1,
                                config=config, extra=extra)
    return run_dir
