"""Benchmark: simulator vs surrogate forecast time per run, and CVAE training throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass
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
    from .models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig, cvae_loss
    from .sim import SimConfig, draw_settings, simulate_runs

    torch.manual_seed(config.seed)
    sim_cfg = SimConfig(runs=config.sim_runs, modules=config.modules,
                        resolution=config.resolution, particles=config.particles,
                        batch_runs=config.sim_runs, seed=config.seed)
    sim_cfg.validate()
    settings = np.stack([draw_settings(sim_cfg, i) for i in range(config.sim_runs)])
    t0 = time.perf_counter()
    images, _ = simulate_runs(sim_cfg, settings, list(range(config.sim_runs)))
    sim_s = (time.perf_counter() - t0) / config.sim_runs

    cvae = CVAE(CVAEConfig(resolution=config.resolution, modules=config.modules)).eval()
    lstm = LatentLSTM(LSTMConfig(modules=config.modules)).eval()
    if config.modules < 2:
        raise ValueError("the benchmark needs at least 2 modules")
    k = min(4, config.modules - 1)  # observed modules
    obs = torch.rand(config.forecast_runs, k, 15, config.resolution, config.resolution)
    with torch.no_grad():
        def one_forecast() -> None:
            r = obs.shape[0]
            mods = torch.arange(k).repeat(r)
            mu, _ = cvae.encode(obs.flatten(0, 1), cvae.condition(mods))
            seq = lstm.rollout(mu.view(r, k, -1), config.modules)
            all_mods = torch.arange(config.modules).repeat(r)
            cvae.decode(seq.flatten(0, 1), cvae.condition(all_mods))

        one_forecast()  # warm-up
        t0 = time.perf_counter()
        one_forecast()
        fc_s = (time.perf_counter() - t0) / config.forecast_runs

    cvae.train()
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
        "forecast_speedup_vs_simulator": sim_s / fc_s,
        "training_images_per_s": train_rate,
    }
