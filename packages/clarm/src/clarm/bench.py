"""Benchmark: simulator vs surrogate forecast time per run, and CVAE training throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["BenchConfig", "run_bench"]


@dataclass
class BenchConfig:
    modules: int = 12
    resolution: int = 64
    sim_runs: int = 4
    particles: int = 10_000
    forecast_runs: int = 16
    train_steps: int = 5
    batch_size: int = 32
    seed: int = 0


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure and return the benchmark figures (all in one process, on CPU threads given)."""
    from .forecast import forecast
    from .models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig, cvae_loss
    from .sim import SimConfig, draw_settings, simulate_runs
    from .train import LoadedCVAE, LoadedLSTM, Normalizer

    torch.manual_seed(config.seed)
    sim_cfg = SimConfig(runs=config.sim_runs, modules=config.modules,
                        resolution=config.resolution, particles=config.particles,
                        batch_runs=config.sim_runs, seed=config.seed)
    sim_cfg.validate()
    settings = np.stack([draw_settings(sim_cfg, i) for i in range(config.sim_runs)])
    t0 = time.perf_counter()
    images, _ = simulate_runs(sim_cfg, settings, list(range(config.sim_runs)))
    sim_s = (time.perf_counter() - t0) / config.sim_runs

    if config.modules < 2:
        raise ValueError("the benchmark needs at least 2 modules")
    # the library forecast path (clarm.forecast.forecast) on default-architecture networks,
    # prepared as load_cvae / load_lstm prepare a checkpoint for inference
    cvae = CVAE(CVAEConfig(resolution=config.resolution, modules=config.modules))
    cvae.eval().to(memory_format=torch.channels_last)
    lstm = LatentLSTM(LSTMConfig(modules=config.modules)).eval()
    empty = np.zeros(0, np.int64)
    loaded_cvae = LoadedCVAE(model=cvae, normalizer=Normalizer(np.maximum(images.max(axis=(0, 1, 3, 4)), 1e-12)),
                             train_runs=empty, val_runs=empty, dataset_id="",
                             settings_mean=None, settings_std=None, latents_min=None,
                             latents_max=None, config={}, path=Path("bench"))
    loaded_lstm = LoadedLSTM(model=lstm, z_mean=np.zeros(8, np.float32),
                             z_std=np.ones(8, np.float32), cvae_path="", path=Path("bench"))
    k = min(4, config.modules - 1)  # observed modules
    reps = -(-config.forecast_runs // config.sim_runs)
    obs = np.concatenate([images[:, :k]] * reps)[:config.forecast_runs]
    forecast(loaded_cvae, loaded_lstm, obs)  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        forecast(loaded_cvae, loaded_lstm, obs)
        times.append(time.perf_counter() - t0)
    fc_s = float(np.median(times)) / config.forecast_runs

    cvae.train().to(memory_format=torch.contiguous_format)
    opt = torch.optim.Adam(cvae.parameters(), lr=1e-3)
    x = torch.from_numpy(images.reshape(-1, *images.shape[2:]))
    x = (x / x.amax(dim=(0, 2, 3), keepdim=True).clamp_min(1e-12)).clamp(0, 1)
    idx = torch.randint(0, len(x), (config.batch_size,))
    mods = idx % config.modules
    t0 = time.perf_counter()
    for _ in range(config.train_steps):
        loss, _, _ = cvae_loss(cvae(x[idx], mods), x[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_rate = config.train_steps * config.batch_size / (time.perf_counter() - t0)
    return {
        "modules": config.modules, "resolution": config.resolution,
        "particles": config.particles, "torch_threads": torch.get_num_threads(),
        "simulator_s_per_run": sim_s, "forecast_s_per_run": fc_s,
        "forecast_observed_modules": k,
        "forecast_speedup_vs_simulator": sim_s / fc_s,
        "training_images_per_s": train_rate,
    }
