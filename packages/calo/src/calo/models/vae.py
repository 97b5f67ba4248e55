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
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import N_CELLS
from ..preprocessing import ShowerPreprocessor, unflatten_cells

__all__ = ["CaloVAE", "CaloVAEConfig", "energy_targets", "vae_loss"]


@dataclass
class CaloVAEConfig:
    """Architecture of CaloVAE.  ``hidden``: MLP widths (encoder order; the decoder mirrors).

    ``energy_head``: a small network models, given the incident energy, the distribution of the
    total energy fraction t = E_tot / E_inc and of the share of layer 0 in layers 0 + 1
    (Gaussians in a normalised / logit space).  Sampled showers are scaled by one factor to
    the sampled t (the layer shares stay as decoded; the share output is trained but not used
    for sampling).  This two-stage energy/shape factorisation (as in CaloFlow) keeps the
    narrow E_tot / E_inc distribution that independent per-cell noise cannot produce.
    """

    latent_dim: int = 32
    hidden: tuple[int, ...] = (512, 256)
    eps: float = 1e-5
    energy_head: bool = True

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
        self.energy_net = (nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, 64),
                                         nn.SiLU(), nn.Linear(64, 4))
                           if self.config.energy_head else None)

    def encode(self, w: torch.Tensor, m: torch.Tensor, c: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(torch.cat([w, m, c], dim=1))
        mu, logvar = self.to_latent(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 6.0)

    def decode(self, z: torch.Tensor, c: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """-> (hit logits, value means, value log-std) each (B, 504), and energy-head output
        (B, 4) = (mean, log-std) of the normalised total fraction and of logit(layer-0 share),
        which depends on the condition only, or None without the energy head."""
        h = self.decoder(torch.cat([z, c], dim=1))
        logit, mean, logstd = self.to_cells(h).chunk(3, dim=1)
        energy = None
        if self.energy_net is not None:
            energy = self.energy_net(c)
            energy = torch.cat([energy[:, :2], energy[:, 2:].clamp(-8.0, 3.0)], dim=1)
        return logit, mean, logstd.clamp(-5.0, 2.0), energy

    def forward(self, w: torch.Tensor, m: torch.Tensor, c: torch.Tensor,
                noise: torch.Tensor | None = None) -> tuple[torch.Tensor | None, ...]:
        """Encode, sample z = mu + noise * sigma (``noise`` (B, latent) standard normal, drawn
        here when None) and decode: (hit logits, value means, value log-std, energy head,
        mu, logvar)."""
        mu, logvar = self.encode(w, m, c)
        if noise is None:
            noise = torch.randn_like(mu)
        z = mu + noise * torch.exp(0.5 * logvar)
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
        logit, mean, logstd, energy = self.decode(z, c)
        logit, mean, logstd = logit.float(), mean.float(), logstd.float()
        energy_gev = energy_gev.float()
        # In-place arithmetic on fresh tensors: no gradients here, and fewer passes over the
        # (B, 504) arrays.  hit = [u < sigmoid(logit)], w = mean + noise * exp(logstd).
        u = torch.rand(logit.shape, device=logit.device, generator=generator)
        hit = torch.sigmoid(logit).gt_(u)
        noise = torch.randn(mean.shape, device=mean.device, generator=generator)
        w = torch.addcmul(mean, noise, logstd.exp_())
        cells = self.preprocessor.inverse(w, hit, energy_gev, inplace=True)
        if energy is not None:
            energy = energy.float()
            eps = torch.randn(energy.shape[0], device=energy.device, generator=generator)
            t = energy[:, 0] + eps * torch.exp(energy[:, 2])
            cells.mul_(_total_factor(cells, energy_gev, t)[:, None])
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
    *,
    net: nn.Module | None = None,
    noise: torch.Tensor | None = None,
    batch_mean: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """CaloVAE loss terms (per shower, averaged over the batch).

    Tensors are (B, 504) cells (``w``, ``m``, ``cells_mev`` in MeV) and (B, 1) (``c``,
    ``energy_gev`` in GeV).  ``net`` is the module to call (``model`` itself, or its DDP
    wrapper); ``noise`` (B, latent) the reparametrisation noise (drawn by the model when None);
    ``batch_mean`` maps a (B,) tensor to its mean over the batch (default ``Tensor.mean``; under
    DDP the mean over the global batch, so that every term, the sparsity term's batch means
    included, is the one-process loss).

    ``recon``: hit-mask BCE plus Gaussian NLL of the normalised energy of hit cells;
    ``kl``: KL(q(z|x) || N(0, 1)) times ``kl_weight`` (annealed by the trainer);
    ``energy``: squared error of the expected total energy fraction (decoder mean, hits weighted
    by their probability) against the true E_tot / E_inc, per layer;
    ``sparsity``: squared error of the mean hit probability against the true hit fraction, per
    layer.  ``total`` is their sum.
    """
    mean_of = batch_mean or torch.mean
    logit, mean, logstd, energy_head, mu, logvar = (net or model)(w, m, c, noise=noise)
    bce = F.binary_cross_entropy_with_logits(logit, m, reduction="none").sum(dim=1)
    nll = (0.5 * ((w - mean) * torch.exp(-logstd)) ** 2 + logstd) * m
    recon = mean_of(bce + nll.sum(dim=1))
    kl = mean_of(-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1))
    prep = model.preprocessor
    p_hit = torch.sigmoid(logit)
    expected = prep.inverse(mean, p_hit, energy_gev) / (1000.0 * energy_gev.reshape(-1, 1))
    truth = cells_mev / (1000.0 * energy_gev.reshape(-1, 1))
    energy_terms = []
    sparsity_terms = []
    for layer_cells in _layer_slices():
        energy_terms.append(mean_of((expected[:, layer_cells].sum(1)
                                     - truth[:, layer_cells].sum(1)) ** 2))
        sparsity_terms.append((mean_of(p_hit[:, layer_cells].mean(1))
                               - mean_of(m[:, layer_cells].mean(1))) ** 2)
    energy = torch.stack(energy_terms).sum()
    sparsity = torch.stack(sparsity_terms).sum() * 1e3
    total = recon + kl_weight * kl + energy_weight * 100.0 * energy + sparsity_weight * sparsity
    out = {"recon": recon, "kl": kl, "energy": energy, "sparsity": sparsity}
    if energy_head is not None:
        target = energy_targets(cells_mev, energy_gev)
        mean_e, logstd_e = energy_head[:, :2], energy_head[:, 2:]
        head = mean_of((0.5 * ((target - mean_e) * torch.exp(-logstd_e)) ** 2
                        + logstd_e).sum(1))
        total = total + 10.0 * energy_weight * head
        out["energy_head"] = head
    out["total"] = total
    return out


#: Normalisation of the total energy fraction t = E_tot / E_inc for the energy head.
_T_CENTRE, _T_SCALE = 1.0, 0.01


def energy_targets(cells_mev: torch.Tensor, energy_gev: torch.Tensor) -> torch.Tensor:
    """(B, 2) energy-head targets: ((t - 1) / 0.01, logit of E_0 / (E_0 + E_1)), t = E_tot/E_inc.

    ``cells_mev`` (B, 504) flattened cells, ``energy_gev`` (B, 1).
    """
    slices = _layer_slices()
    e0 = cells_mev[:, slices[0]].sum(1)
    e1 = cells_mev[:, slices[1]].sum(1)
    t = cells_mev.sum(1) / (1000.0 * energy_gev.reshape(-1))
    share = (e0 / (e0 + e1).clamp_min(1e-6)).clamp(1e-4, 1.0 - 1e-4)
    return torch.stack([(t - _T_CENTRE) / _T_SCALE, torch.logit(share)], dim=1)


def _rescale_total(cells: torch.Tensor, energy_gev: torch.Tensor, sampled_t: torch.Tensor
                   ) -> torch.Tensor:
    """Scale all cells of each shower by one factor so that E_tot / E_inc equals the sampled
    energy-head value (normalised, ``(t - 1) / 0.01``); the layer shares stay as decoded.

    A common factor is what a calorimeter's energy-resolution fluctuation does to a shower,
    and it keeps the correlation between the layer energies and the shower shape that the
    latent vector carries (rescaling the layer-0 share as well, independently of the latent,
    destroyed it: high-level classifier AUC 0.82 instead of 0.65 on the same checkpoint).
    Showers with no hit cell stay empty.
    """
    return cells * _total_factor(cells, energy_gev, sampled_t)[:, None]


def _total_factor(cells: torch.Tensor, energy_gev: torch.Tensor, sampled_t: torch.Tensor
                  ) -> torch.Tensor:
    """(B,) factors of :func:`_rescale_total` (1 for empty showers)."""
    t = (_T_CENTRE + _T_SCALE * sampled_t).clamp_min(0.0)
    total = cells.sum(1)
    return torch.where(total > 0, t * 1000.0 * energy_gev.reshape(-1) / total.clamp_min(1e-12),
                       torch.ones_like(total))


def _layer_slices() -> list[slice]:
    from ..geometry import LAYERS

    out, start = [], 0
    for layer in LAYERS:
        out.append(slice(start, start + layer.n_cells))
        start += layer.n_cells
    return out
