"""Generate showers from a trained checkpoint, streaming into a CaloGAN HDF5 file."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from physml_core.config import to_dict
from physml_core.device import autocast, resolve_device
from physml_core.hdf5 import DatasetSpec, H5Reader, Schema
from physml_core.logging import progress
from physml_core.provenance import to_records

from .artifacts import load_model
from .data import CALO_SCHEMA, H5Appender
from .models import CaloGAN

#: Attribute of generated files: the provenance records of the checkpoint's training rows.
TRAIN_PROVENANCE_ATTR = "train_provenance"

__all__ = ["ENERGY_SCHEMA", "OVERFLOW_NOTE", "TRAIN_PROVENANCE_ATTR", "GenerateConfig", "generate",
           "parse_energy_range"]

#: Any file with an ``energy`` (N, 1) GeV dataset (e.g. a CaloGAN file) can drive generation.
ENERGY_SCHEMA = Schema("calo-energies", (DatasetSpec("energy", (None, 1), unit="GeV"),))


@dataclass
class GenerateConfig:
    """``calo generate``: ``num`` showers with energies uniform in ``energy_gev`` (GeV) or taken
    from ``energy_file`` (its ``energy`` dataset; ``num`` then defaults to its length).
    ``particle``: the particle type to generate (required for a multi-particle CaloGAN; for
    a one-particle model it must be the one it was trained on, when recorded)."""

    checkpoint: str
    output: str
    num: int | None = None
    energy_gev: tuple[float, float] | None = None
    energy_file: str | None = None
    batch_size: int = 1024
    device: str = "auto"
    seed: int = 0
    dtype: str = "fp32"
    particle: str | None = None

    def __post_init__(self) -> None:
        if self.num is not None and self.num < 1:
            raise ValueError(f"number of showers must be positive, got {self.num}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.energy_gev is not None:
            lo, hi = self.energy_gev
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo:
                raise ValueError(f"energy range must satisfy 0 < min <= max (GeV), got {lo}:{hi}")
        if self.energy_gev is not None and self.energy_file is not None:
            raise ValueError("give either an energy range or an energy file, not both")
        if self.dtype not in ("fp32", "bf16"):
            raise ValueError(f"dtype must be fp32 or bf16, got {self.dtype!r}")


#: File attribute of generated files: what their ``overflow`` dataset holds.
OVERFLOW_NOTE = ("overflow is not modelled by the generator: written as zeros (MeV) so that "
                 "the file has the CaloGAN keys and shapes; in CaloGAN Geant4 samples it is "
                 "the energy outside the 480 x 480 mm window per layer")


def parse_energy_range(text: str) -> tuple[float, float]:
    """Parse ``"1:100"`` (GeV) or a single value ``"50"`` into ``(min, max)``."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise ValueError(f"energy {text!r} is not MIN:MAX or a number (GeV)") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(f"energy {text!r} is not MIN:MAX (GeV)")
    lo, hi = parts
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 or hi < lo:
        raise ValueError(f"energy range must satisfy 0 < min <= max (GeV), got {text!r}")
    return lo, hi


def generate(config: GenerateConfig, progress_bar: bool = True) -> int:
    """Generate showers into ``config.output`` (CaloGAN format, MeV cells); returns the count.

    The models do not generate ``overflow`` (the energy outside the 480 x 480 mm window, per
    layer): the file carries it as zeros, so that it has exactly the keys and shapes of the
    CaloGAN format, and the file attributes ``overflow_modelled = 0`` and ``overflow_note``
    say so (see :data:`OVERFLOW_NOTE`).
    """
    device = resolve_device(config.device)
    loaded = load_model(config.checkpoint, device)
    model = loaded.model
    label = loaded.label_of(config.particle)
    energies: np.ndarray | None = None
    if config.energy_file is not None:
        with H5Reader(config.energy_file, ENERGY_SCHEMA) as reader:
            n_file = len(reader)
            n = config.num or n_file
            energies = reader.read("energy", 0, min(n, n_file)).reshape(-1)
        if np.any(energies <= 0):
            raise ValueError(f"{config.energy_file}: incident energies must be positive")
        if n > n_file:
            energies = np.resize(energies, n)
    else:
        n = config.num or 10000
    lo, hi = config.energy_gev or loaded.energy_range_gev
    rng = np.random.default_rng(config.seed)
    torch_gen = torch.Generator(device=device).manual_seed(config.seed)
    attrs = {"generator": f"calo.{loaded.model_name}", "checkpoint": str(loaded.checkpoint),
             "checkpoint_step": loaded.step, "generate_config": to_dict(config),
             "overflow_modelled": 0, "overflow_note": OVERFLOW_NOTE,
             TRAIN_PROVENANCE_ATTR: (to_records(loaded.provenance)
                                     if loaded.provenance is not None else None)}
    particle = config.particle or (loaded.particles[0] if len(loaded.particles) == 1 else None)
    if particle is not None:
        attrs["particle"] = particle
    with H5Appender(config.output, CALO_SCHEMA, attrs=attrs) as out:
        bar = progress(total=n, desc="generate", disable=None if progress_bar else True)
        for start in range(0, n, config.batch_size):
            size = min(config.batch_size, n - start)
            e = (energies[start:start + size] if energies is not None
                 else rng.uniform(lo, hi, size))
            e_t = torch.as_tensor(np.asarray(e, np.float32), device=device).view(-1, 1)
            with torch.inference_mode(), autocast(device, config.dtype):
                if isinstance(model, CaloGAN) and label is not None:
                    labels = torch.full((size,), label, dtype=torch.long, device=device)
                    showers = model.sample_showers(e_t, generator=torch_gen, labels=labels)
                else:
                    showers = model.sample_showers(e_t, generator=torch_gen)
            batch = {k: v.float().cpu().numpy() for k, v in showers.items()}
            batch["overflow"] = np.zeros((size, 3), np.float32)
            out.append(batch)
            bar.update(size)
        bar.close()
        return out.rows
