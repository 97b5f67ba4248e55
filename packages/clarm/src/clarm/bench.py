"""Benchmark: simulator vs surrogate forecast time per run, and CVAE training throughput."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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
    observed: int = 4
    train_steps: int = 5
    batch_size: int = 32
    repeats: int = 3
    sim_repeats: int = 2
    seed: int = 0


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Measure simulator and forecast per run at the same batch size (``sim_runs``) and at
    batch 1, the end-to-end saving (simulating the observed modules + forecasting the rest
    vs simulating every module), and CVAE training throughput.  One process, one thread
    setting (reported) for everything."""
    from .artifacts import LoadedCVAE, LoadedLSTM
    from .config import CVAETrainConfig
    from .forecast import forecast
    from .models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig, cvae_loss
    from .normalise import Normalizer
    from .sim import SimConfig, draw_settings, simulate_runs

    if config.modules < 2 or not 1 <= config.observed < config.modules:
        raise ValueError("the benchmark needs at least 2 modules and 1 <= observed < modules")
    torch.manual_seed(config.seed)
    b, k = config.sim_runs, config.observed
    sim_cfg = SimConfig(runs=b, modules=config.modules, resolution=config.resolution,
                        particles=config.particles, batch_runs=b, seed=config.seed)
    sim_cfg.validate()
    settings = np.stack([draw_settings(sim_cfg, i) for i in range(b)])
    # the first k modules of the same runs: same lattice, same particles, k modules
    obs_cfg = SimConfig(**{**sim_cfg.__dict__, "modules": k})
    obs_settings = np.concatenate([settings[:, :k], settings[:, config.modules:config.modules + k],
                                   settings[:, 2 * config.modules:]], axis=1)
    simulate_runs(obs_cfg, obs_settings[:1], [0])  # warm-up (imports, allocator)
    images = np.zeros(0)

    def sim_all(n: int) -> None:
        nonlocal images
        out, _ = simulate_runs(sim_cfg, settings[:n], list(range(n)))
        if n == b:
            images = out  # the forecast below observes these runs

    def sim_obs(n: int) -> None:
        simulate_runs(obs_cfg, obs_settings[:n], list(range(n)))

    # interleaved, best of `sim_repeats`: the four simulator timings see the same load
    best = {key: math.inf for key in ("all_b", "obs_b", "all_1", "obs_1")}
    for _ in range(config.sim_repeats):
        for key, fn, n in (("all_b", sim_all, b), ("obs_b", sim_obs, b), ("all_1", sim_all, 1),
                           ("obs_1", sim_obs, 1)):
            best[key] = min(best[key], _median_time(partial(fn, n), 1) / n)
    sim_b, obs_b, sim_1, obs_1 = best["all_b"], best["obs_b"], best["all_1"], best["obs_1"]

    # the library forecast path (clarm.forecast.forecast) on default-architecture networks,
    # prepared as load_cvae / load_lstm prepare a checkpoint for inference
    cvae = CVAE(CVAEConfig(resolution=config.resolution, modules=config.modules))
    cvae.eval().to(memory_format=torch.channels_last)
    lstm = LatentLSTM(LSTMConfig(modules=config.modules)).eval()
    empty = np.zeros(0, np.int64)
    scale = np.maximum(images.max(axis=(0, 1, 3, 4)), 1e-12)
    loaded_cvae = LoadedCVAE(model=cvae, normalizer=Normalizer(scale), train_runs=empty,
                             val_runs=empty, dataset_id="", settings_mean=None,
                             settings_std=None, latents_min=None, latents_max=None,
                             config=CVAETrainConfig(), path=Path("bench"))
    loaded_lstm = LoadedLSTM(model=lstm, z_mean=np.zeros(8, np.float32),
                             z_std=np.ones(8, np.float32), cvae_path="", path=Path("bench"))
    obs = np.ascontiguousarray(images[:, :k])
    forecast(loaded_cvae, loaded_lstm, obs)  # warm-up
    fc_b = _median_time(lambda: forecast(loaded_cvae, loaded_lstm, obs), config.repeats) / b
    fc_1 = _median_time(lambda: forecast(loaded_cvae, loaded_lstm, obs[:1]), config.repeats)

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
        "modules": config.modules, "observed_modules": k, "resolution": config.resolution,
        "particles": config.particles, "torch_threads": torch.get_num_threads(),
        "batch_runs": b, "simulator_timing": f"best of {config.sim_repeats}, interleaved",
        "simulator_s_per_run": {f"batch_{b}": sim_b, "batch_1": sim_1},
        "simulator_observed_modules_s_per_run": {f"batch_{b}": obs_b, "batch_1": obs_1},
        "forecast_s_per_run": {f"batch_{b}": fc_b, "batch_1": fc_1},
        "forecast_speedup_vs_simulator": {f"batch_{b}": sim_b / fc_b, "batch_1": sim_1 / fc_1},
        "end_to_end_speedup": {f"batch_{b}": sim_b / (obs_b + fc_b),
                               "batch_1": sim_1 / (obs_1 + fc_1)},
        "end_to_end_bound_M_over_k": config.modules / k,
        "training_images_per_s": train_rate,
    }


def stream_epoch_bench(data: str | Path, block_runs: int = 16, base_filters: int = 32,
                       max_train_runs: int = 0, run_dir: str | Path | None = None
                       ) -> dict[str, Any]:
    """One CVAE epoch streamed from ``data`` (HDF5): wall time, the process's CPU time
    (user + system, s), the 1-minute load average before and after (the machine's, for
    judging the wall time) and the process's peak resident memory (``ru_maxrss``, includes
    torch itself).  It measures training itself, so it (alone in this module) imports the
    trainer."""
    import os
    import resource
    import tempfile

    from .config import CVAETrainConfig
    from .data import PhaseSpaceFile
    from .train import train_cvae

    with PhaseSpaceFile(data) as f:
        runs, modules, res = f.runs, f.modules, f.resolution
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CVAETrainConfig(data=str(data), run_dir=str(run_dir or Path(tmp) / "cvae"),
                              epochs=1, block_runs=block_runs, base_filters=base_filters,
                              max_train_runs=max_train_runs or None, device="cpu",
                              tensorboard=False)
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        train_cvae(cfg, progress_bar=False)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024**2  # KiB -> GiB
    size_gb = runs * modules * 15 * res * res * 4 / 1e9
    return {"data": str(data), "runs": runs, "modules": modules, "resolution": res,
            "float32_size_GB": size_gb, "block_runs": block_runs,
            "torch_threads": torch.get_num_threads(), "epoch_wall_s": wall,
            "process_cpu_s": usage.ru_utime + usage.ru_stime,
            "load_average_1min_before_after": [load0, load1], "peak_rss_GiB": peak}
