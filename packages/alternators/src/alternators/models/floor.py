"""Memoryless floor model: each step's latent from that step's observation alone.

    z_t = r(x_t)     (an MLP, trained with the masked latent MSE)

It has no dynamics, so it cannot predict an observation: its one-step prediction is the training
mean (0 in standardised units) and at missing entries it draws from the training distribution,
N(0, 1) per standardised feature (climatology).  Where a step has no observed feature at all,
its latent is drawn from N(0, 1) per standardised latent (latent climatology); partly observed
steps fill their missing features with the mean 0 before the read-out.  Any model with memory
should beat it; a model that does not, has learned nothing beyond the current observation.
"""

from __future__ import annotations

import torch

from .base import SequenceModel, masked_mse, randn
from .bodies import mlp

__all__ = ["MemorylessMLP"]


class MemorylessMLP(SequenceModel):
    name = "mlp"

    def __init__(self, obs_dim: int, latent_dim: int, *, hidden: int = 128,
                 layers: int = 3) -> None:
        super().__init__(obs_dim, latent_dim)
        self.readout = mlp(obs_dim, latent_dim, hidden, layers)

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        preds = torch.zeros_like(x)
        if mask is None:
            return x, self.readout(x), preds
        z = self.readout(torch.where(mask, x, torch.zeros_like(x)))
        x_used = torch.where(mask, x, randn(tuple(x.shape), x, generator))
        blind = ~mask.any(-1, keepdim=True)
        z = torch.where(blind, randn(tuple(z.shape), z, generator), z)
        return x_used, z, preds

    def loss(self, x: torch.Tensor, z: torch.Tensor | None = None,
             mask: torch.Tensor | None = None,
             z_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if z is None:
            raise ValueError("the memoryless MLP floor needs latents z to train on")
        x, mask = self.prepare_loss_inputs(x, mask)
        lat = masked_mse(self.readout(x), torch.nan_to_num(z), z_mask)
        return {"latent_mse": lat, "loss": lat}
