"""Speed benchmark: training seconds per epoch and sampling sequences per second, per model.

Every model is trained on the same small simulated Lorenz data set in the same process, so the
ratios between models are meaningful even on a busy machine; absolute numbers depend on it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from physml_core.device import device_summary, resolve_device
from physml_core.logging import read_metrics

from .artifacts import load_model
from .config import TrainConfig
from .data.dataset import save_sequences
from .data.simulate import LorenzConfig, simulate_lorenz
from .models.factory import MODEL_NAMES, ModelConfig, ModelName
from .train import train

__all__ = ["BenchConfig", "run_benchmark"]


@dataclass
class BenchConfig:
    """n_train: training sequences of n_steps steps; epochs: timed epochs per model;
    n_sample: sequences generated for the sampling rate; hidden: network width."""

    n_train: int = 32
    n_steps: int = 200
    epochs: int = 2
    batch_size: int = 16
    n_sample: int = 64
    hidden: int = 128
    device: str = "auto"
    models: tuple[ModelName, ...] = MODEL_NAMES
    seed: int = 0


def run_benchmark(config: BenchConfig | None = None) -> dict[str, Any]:
    """Time training and sampling of each model; returns a JSON-ready dict."""
    config = config or BenchConfig()
    device = resolve_device(config.device)
    results: dict[str, Any] = {
        "device": device_summary(device),
        "torch_threads": torch.get_num_threads(),
        "setup": {"n_train": config.n_train, "n_steps": config.n_steps,
                  "batch_size": config.batch_size, "hidden": config.hidden,
                  "epochs_timed": config.epochs, "n_sample": config.n_sample},
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="alternators-bench-") as tmp:
        data_path = Path(tmp) / "lorenz.h5"
        save_sequences(data_path, simulate_lorenz(LorenzConfig(
            n_train=config.n_train, n_val=4, n_test=4, n_steps=config.n_steps,
            save_spikes=False, seed=config.seed)))
        for name in config.models:
            run = train(TrainConfig(
                data=str(data_path), run_dir=str(Path(tmp) / name),
                model=ModelConfig(name=name, hidden=config.hidden), epochs=config.epochs,
                batch_size=config.batch_size, device=str(device), seed=config.seed,
                tensorboard=False, checkpoint_every=config.epochs), progress_bar=False)
            epoch_seconds = [float(row["train/epoch_seconds"])
                             for row in read_metrics(run.run_dir / "metrics.jsonl")]
            per_epoch = sum(epoch_seconds) / len(epoch_seconds)
            loaded = load_model(run.checkpoint, device)
            loaded.model.sample(2, 8)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loaded.model.sample(config.n_sample, config.n_steps)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - t0
            results["models"][name] = {
                "train_seconds_per_epoch": per_epoch,
                "train_sequences_per_second": config.n_train / max(per_epoch, 1e-9),
                "sample_sequences_per_second": config.n_sample / elapsed,
                "sample_steps": config.n_steps,
                "parameters": sum(p.numel() for p in loaded.model.parameters()),
            }
    models = results["models"]
    if "alternator" in models:
        alt = models["alternator"]
        for base in ("vrnn", "rnn"):
            if base in models:
                results[f"alternator_vs_{base}"] = {
                    "train_speedup": models[base]["train_seconds_per_epoch"]
                    / max(alt["train_seconds_per_epoch"], 1e-9),
                    "sample_speedup": alt["sample_sequences_per_second"]
                    / max(models[base]["sample_sequences_per_second"], 1e-9),
                }
    return results
