"""Sampling new phase-space images for a module from a trained CVAE.

``method="prior"`` draws z from the CVAE's conditional prior p(z | module) (N(0, I) for a model
trained with ``prior="standard"``); ``method="box"`` is the reference's sampler: uniform inside the
per-dimension min/max box of the module's training latents (Rautela et al. 2024, section 3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from physml_core.errors import CheckpointError
from physml_core.hdf5 import DatasetSpec, Schema, write_h5

from .artifacts import LoadedCVAE
from .data import NUM_PROJECTIONS

__all__ = ["GENERATED_SCHEMA", "generate", "write_generated"]

GENERATED_SCHEMA = Schema(
    name="clarm.generated",
    datasets=(
        DatasetSpec("images", (None, NUM_PROJECTIONS, None, None), "float32",
                    unit="fraction of macroparticles per pixel", chunks=(1, None, None, None)),
        DatasetSpec("module", (None,), "int64", description="module index of each sample"),
    ),
    required_attrs=("method",),
)


@torch.no_grad()
def generate(cvae: LoadedCVAE, module: int, num: int, method: str = "prior", seed: int = 0,
             normalized: bool = False) -> np.ndarray:
    """``num`` images (num, 15, H, W) for ``module``; physical units unless ``normalized``."""
    model = cvae.model
    cfg = model.config
    if not 0 <= module < cfg.modules:
        raise ValueError(f"module index {module} out of range 0..{cfg.modules - 1}")
    if num < 1:
        raise ValueError(f"number of samples must be >= 1, got {num}")
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    mods = torch.full((num,), module, dtype=torch.int64, device=device)
    settings = None
    if cfg.settings_dim:
        settings = torch.zeros(num, cfg.settings_dim, device=device)  # the training mean
    model.eval()
    cond = model.condition(mods, settings)
    if method == "prior":
        mu, logvar = model.prior(cond)
        eps = torch.randn(num, cfg.latent_dim, generator=gen).to(device)
        z = mu + eps * (0.5 * logvar).exp()
    elif method == "box":
        if cvae.latents_min is None or cvae.latents_max is None:
            raise CheckpointError(f"{cvae.path}: checkpoint holds no latent box (only the final "
                                  "epoch's checkpoint has one); use method 'prior'")
        lo = torch.as_tensor(cvae.latents_min[module], dtype=torch.float32)
        hi = torch.as_tensor(cvae.latents_max[module], dtype=torch.float32)
        z = (lo + (hi - lo) * torch.rand(num, cfg.latent_dim, generator=gen)).to(device)
    else:
        raise ValueError(f"method must be 'prior' or 'box', got {method!r}")
    images = torch.cat([model.decode(z[i:i + 256], cond[i:i + 256])
                        for i in range(0, num, 256)]).cpu().numpy()
    return images if normalized else cvae.normalizer.inverse(images)


def write_generated(path: str | Path, images: np.ndarray, modules: np.ndarray,
                    method: str, checkpoint: str) -> Path:
    """Write generated images (N, 15, H, W) and their module indices (N,) to HDF5."""
    return write_h5(path, GENERATED_SCHEMA, {"images": images, "module": modules},
                    attrs={"method": method, "checkpoint": str(checkpoint),
                           "resolution": int(images.shape[-1])})
