"""CaloVAE: an energy-conditioned variational autoencoder for CaloGAN showers.

In the spirit of the CaloGAN-VAE repository (log1p preprocessing, KL annealing, energy and
sparsity terms), with two changes:

- the preprocessing is one :class:`~calo.preprocessing.ShowerPreprocessor` saved in the
  checkpoint, so generation and evaluation cannot disagree (the original's 2x energy bug);
- the decoder predicts, per cell, a hit probability and the log-normalised energy of a hit
  cell (mean and spread).  Sampling draws the hit mask, so empty cells are exact zeros and the
  sparsity is learned directly, instead of clipping tiny positive noise.

The 504 cells of the three layers are flattened (no padding to 3 x 12 x 96) and handled by
MLPs conditioned on log E, which keeps the decoder at about 2 MFLOP per shower.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import N_CELLS
from ..preprocessing import ShowerPreprocessor, unflatten_cells

__all__ = ["CaloVAE", "CaloVAEConfig", "vae_loss"]


@dataclass
class CaloVAEConfig:
    """Architecture of CaloVAE.  ``hidden``: MLP widths (encoder order; the decoder mirrors)."""

    latent_dim: int = 32
    hidden: tuple[int, ...] = (512, 256)
    eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError("CaloVAE sizes must be positive")


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers)


class CaloVAE(nn.Module):
    """Conditional VAE over the 504 CaloGAN cells.

    ``encode(w, m, c) -> (mu, logvar)`` with w, m of shape (B, 504) and the condition c (B, 1);
    ``decode(z, c) -> (hit_logit, value_mean, value_logstd)``, each (B, 504).
    """

    def __init__(self, config: CaloVAEConfig | None = None,
                 preprocessor: ShowerPreprocessor | None = None) -> None:
        super().__init__()
        self.config = config or CaloVAEConfig()
        self.preprocessor = preprocessor or ShowerPreprocessor(eps=self.config.eps)
        hidden = list(self.config.hidden)
        self.encoder = _mlp([2 * N_CELLS + 1, *hidden])
        self.to_latent = nn.Linear(hidden[-1], 2 * self.config.latent_dim)
        self.decoder = _mlp([self.config.latent_dim + 1, *hidden[::-1]])
        self.to_cells = nn.Linear(hidden[0], 3 * N_CELLS)

    def encode(self, w: torch.Tensor, m: torch.Tensor, c: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.cat([w, m, c], dim=1))
        mu, logvar = self.to_latent(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor, c: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.to_cells(self.decoder(torch.cat([z, c], dim=1)))
        logit, mean, logstd = out.chunk(3, dim=1)
        return logit, mean, logstd.clamp(-5.0, 2.0)

    def forward(self, w: torch.Tensor, m: torch.Tensor, c: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        mu, logvar = self.encode(w, m, c)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return (*self.decode(z, c), mu, logvar)

    @torch.no_grad()
    def sample_showers(self, energy_gev: torch.Tensor, generator: torch.Generator | None = None,
                       temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """Generate showers for incident energies (B,) or (B, 1) GeV; cells in MeV."""
        energy_gev = energy_gev.reshape(-1, 1)
        c = self.preprocessor.condition(energy_gev.float()).to(energy_gev.dtype)
        z = temperature * torch.randn(energy_gev.shape[0], self.config.latent_dim,
                                      device=energy_gev.device, dtype=energy_gev.dtype,
                                      generator=generator)
        logit, mean, logstd = self.decode(z, c)
        logit, mean, logstd = logit.float(), mean.float(), logstd.float()
        u = torch.rand(logit.shape, device=logit.device, generator=generator)
        hit = (u < torch.sigmoid(logit)).float()
        noise = torch.randn(mean.shape, device=mean.device, generator=generator)
        w = mean + noise * torch.exp(logstd)
        cells = self.preprocessor.inverse(w, hit, energy_gev.float())
        out = unflatten_cells(cells)
        out["energy"] = energy_gev.float()
        return out


def vae_loss(
    model: CaloVAE,
    w: torch.Tensor,
    m: torch.Tensor,
    c: torch.Tensor,
    energy_gev: torch.Tensor,
    cells_mev: torch.Tensor,
    kl_weight: float,
    energy_weight: float = 1.0,
    sparsity_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """CaloVAE loss terms (per shower, averaged over the batch).

    ``recon``: hit-mask BCE plus Gaussian NLL of the normalised energy of hit cells;
    ``kl``: KL(q(z|x) || N(0, 1)) times ``kl_weight`` (annealed by the trainer);
    ``energy``: squared error of the expected total energy fraction (decoder mean, hits weighted
    by their probability) against the true E_tot / E_inc, per layer;
    ``sparsity``: squared error of the mean hit probability against the true hit fraction, per
    layer.  ``total`` is their sum.
    """
    logit, mean, logstd, mu, logvar = model(w, m, c)
    bce = F.binary_cross_entropy_with_logits(logit, m, reduction="none").sum(dim=1)
    nll = (0.5 * ((w - mean) * torch.exp(-logstd)) ** 2 + logstd) * m
    recon = (bce + nll.sum(dim=1)).mean()
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)).mean()
    prep = model.preprocessor
    p_hit = torch.sigmoid(logit)
    expected = prep.inverse(mean, p_hit, energy_gev) / (1000.0 * energy_gev.reshape(-1, 1))
    truth = cells_mev / (1000.0 * energy_gev.reshape(-1, 1))
    energy_terms = []
    sparsity_terms = []
    for layer_cells in _layer_slices():
        energy_terms.append(((expected[:, layer_cells].sum(1) - truth[:, layer_cells].sum(1))
                             ** 2).mean())
        sparsity_terms.append((p_hit[:, layer_cells].mean() - m[:, layer_cells].mean()) ** 2)
    energy = torch.stack(energy_terms).sum()
    sparsity = torch.stack(sparsity_terms).sum() * 1e3
    total = recon + kl_weight * kl + energy_weight * 100.0 * energy + sparsity_weight * sparsity
    return {"total": total, "recon": recon, "kl": kl, "energy": energy, "sparsity": sparsity}


def _layer_slices() -> list[slice]:
    from ..geometry import LAYERS

    out, start = [], 0
    for layer in LAYERS:
        out.append(slice(start, start + layer.n_cells))
        start += layer.n_cells
    return out
