"""Throughput benchmark: simulator and generators in showers per second.

Figures are measured in one process: the simulator first (the baseline), then each model at
several batch sizes, with the ratio generator / simulator.  For CaloGAN the FLOPs per shower
are counted from the actual layers (nominal: the layer-by-layer network; executed: the folded
inference path that computes the same outputs) and the achieved fraction of the fp32 matmul
roofline is reported, against a 2048 x 2048 matmul measured in the same process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from physml_core.device import autocast, device_summary, resolve_device

from .models import CaloGAN, CaloGANGenerator, CaloVAE
from .models.calogan import layer_flops
from .sim import SimConfig, simulate_showers

__all__ = ["run_benchmark"]


def _rate(fn: Callable[[], int], min_seconds: float, min_calls: int = 2) -> float:
    fn()  # warm-up
    calls, done, start = 0, 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        done += fn()
        calls += 1
    return done / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(device: torch.device, dtype: torch.dtype = torch.float32,
                 size: int = 2048, seconds: float = 1.0) -> float:
    """Measured FLOP/s of a size x size matrix product on ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def once() -> int:
        torch.mm(a, b)
        _sync(device)
        return 1

    return _rate(once, seconds) * 2.0 * size**3


def run_benchmark(
    device: str = "auto",
    batch_sizes: Sequence[int] = (1, 128, 1024, 10000),
    models: Sequence[str] = ("vae", "gan"),
    seconds: float = 2.0,
    bf16: bool = False,
    sim_showers: int = 4096,
    threads: int | None = None,
) -> dict[str, Any]:
    """Return a JSON-ready dict of throughputs (showers/s).  Models use untrained weights of the
    default architectures (speed does not depend on training).  ``threads``: CPU threads for
    torch (default: torch's setting)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    torch.manual_seed(0)
    cfg = SimConfig()
    rng = np.random.default_rng(0)
    sim_rate = _rate(lambda: len(simulate_showers(sim_showers, cfg, rng)["energy"]), seconds)
    result: dict[str, Any] = {
        "device": device_summary(dev),
        "torch_threads": torch.get_num_threads(),
        "simulator_showers_per_s": sim_rate,
        "models": {},
    }
    fp32_flops = matmul_flops(dev, torch.float32, seconds=min(seconds, 1.0))
    result["matmul_2048_fp32_gflops"] = fp32_flops / 1e9
    dtypes = ["fp32", "bf16"] if bf16 else ["fp32"]
    if bf16:
        result["matmul_2048_bf16_gflops"] = matmul_flops(dev, torch.bfloat16,
                                                         seconds=min(seconds, 1.0)) / 1e9
    for name in models:
        model: CaloGANGenerator | CaloVAE
        if name == "gan":
            model = CaloGAN().generator
            per_layer = layer_flops(model)
            nominal = per_layer["total"]
            executed = model.inference_plan().flops_per_shower()
        elif name == "vae":
            model = CaloVAE()
        else:
            raise ValueError(f"unknown model {name!r}: use gan or vae")
        model.to(dev).eval()
        entry: dict[str, Any] = {}
        for dtype in dtypes:
            for batch in batch_sizes:
                energy = torch.empty(batch, 1, device=dev).uniform_(1.0, 100.0)

                def once(model: CaloGANGenerator | CaloVAE = model, energy: torch.Tensor = energy,
                         dtype: str = dtype) -> int:
                    with torch.inference_mode(), autocast(dev, dtype):
                        out = model.sample_showers(energy)
                        if dev.type != "cpu":
                            out["layer_0"].cpu()
                    return energy.shape[0]

                rate = _rate(once, seconds)
                key = f"{dtype}_batch_{batch}"
                entry[key] = {"showers_per_s": rate, "ratio_to_simulator": rate / sim_rate}
                if name == "gan":
                    peak = (fp32_flops if dtype == "fp32"
                            else result["matmul_2048_bf16_gflops"] * 1e9)
                    # Fraction of the matmul roofline actually achieved by the executed
                    # FLOPs, and the same for the architecture's nominal FLOPs.
                    entry[key]["achieved_gflops_executed"] = rate * executed / 1e9
                    entry[key]["fraction_of_roofline"] = rate * executed / peak
                    entry[key]["nominal_flop_limit_showers_per_s"] = peak / nominal
                    entry[key]["fraction_of_nominal_flop_limit"] = rate * nominal / peak
        if name == "gan":
            entry["mflop_per_shower_nominal"] = nominal / 1e6
            entry["mflop_per_shower_executed"] = executed / 1e6
            entry["mflop_per_layer_nominal"] = {k: v / 1e6 for k, v in per_layer.items()
                                                if k != "total"}
            entry["roofline_note"] = (
                "nominal: FLOPs of the layer-by-layer network (Dense, Conv2D, locally connected "
                "layers, from hooks on the actual layers); executed: FLOPs of the folded "
                "inference path (Dense and Conv2D folded into one matrix, BatchNorm into the "
                "next layer), which computes the same outputs; roofline: the 2048^2 fp32 "
                "matmul rate measured above in this process")
        result["models"][name] = entry
    return result
