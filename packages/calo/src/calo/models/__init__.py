"""Generative models of calorimeter showers: CaloGAN (Paganini et al. 2018) and CaloVAE."""

from __future__ import annotations

from .calogan import (
    CaloGAN,
    CaloGANConfig,
    CaloGANDiscriminator,
    CaloGANGenerator,
    generator_flops_per_shower,
)
from .layers import LocallyConnected2d, MinibatchDiscrimination
from .vae import CaloVAE, CaloVAEConfig, vae_loss

__all__ = [
    "MODEL_NAMES",
    "CaloGAN",
    "CaloGANConfig",
    "CaloGANDiscriminator",
    "CaloGANGenerator",
    "CaloVAE",
    "CaloVAEConfig",
    "LocallyConnected2d",
    "MinibatchDiscrimination",
    "generator_flops_per_shower",
    "vae_loss",
]

#: CLI model names -> checkpoint model names.
MODEL_NAMES = {"gan": "calogan", "vae": "calovae"}
