"""Conditional VAE on 15-channel phase-space images (Rautela et al., arXiv:2403.13858, Fig. 2).

Encoder: ``stages`` x [Conv2d 3x3 stride 2 -> LeakyReLU(0.2) -> BatchNorm] with 32, 64, 128, ...
filters down to 8 x 8 (5 stages at 256 x 256, 3 at 64 x 64), flatten -> Linear(256) -> Dropout;
a condition branch embeds the module index (one-hot, optionally with the run settings) to 32
features; both are concatenated and mapped to the mean and log-variance of q(z | x, c).

Decoder: Linear(z [+ condition] -> 256 -> 8*8*F) -> ``stages`` transposed convolutions (4x4,
stride 2; the last one outputs the 15 projections, as in the reference) -> sigmoid.
The reference conditions only the encoder; here ``cond_decoder=True`` (default) feeds the
condition to the decoder too, and ``prior="conditional"`` learns p(z | c) = N(mu(c), sigma(c))
per module instead of N(0, I), so new samples for a module come from its own prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from ..data import NUM_PROJECTIONS, check_resolution

__all__ = ["CVAE", "CVAEConfig", "cvae_loss"]


@dataclass
class CVAEConfig:
    """Architecture of :class:`CVAE` (stored in every checkpoint)."""

    resolution: int = 64
    modules: int = 12
    latent_dim: int = 8
    settings_dim: int = 0
    cond_decoder: bool = True
    prior: str = "conditional"
    base_filters: int = 32
    max_filters: int = 512
    hidden: int = 256
    cond_features: int = 32
    dropout: float = 0.1

    def validate(self) -> None:
        check_resolution(self.resolution)
        if self.modules < 1 or self.latent_dim < 1 or self.settings_dim < 0:
            raise ValueError("modules and latent_dim must be >= 1, settings_dim >= 0")
        if self.prior not in ("conditional", "standard"):
            raise ValueError(f"prior must be 'conditional' or 'standard', got {self.prior!r}")

    @property
    def stages(self) -> int:
        """Number of stride-2 stages: down to 8 x 8 (3 at 64, 5 at 256)."""
        return int(math.log2(self.resolution)) - 3

    def filters(self) -> list[int]:
        return [min(self.base_filters * 2**i, self.max_filters) for i in range(self.stages)]


class CVAE(nn.Module):
    """Conditional VAE; images (B, 15, H, W) in [0, 1], module (B,) long, settings (B, S)."""

    def __init__(self, config: CVAEConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        filters = config.filters()
        layers: list[nn.Module] = []
        cin = NUM_PROJECTIONS
        for f in filters:
            layers += [nn.Conv2d(cin, f, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                       nn.BatchNorm2d(f)]
            cin = f
        self.encoder = nn.Sequential(*layers)
        flat = filters[-1] * 8 * 8
        self.enc_fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.hidden), nn.LeakyReLU(0.2),
                                    nn.Dropout(config.dropout), nn.BatchNorm1d(config.hidden))
        cond_in = config.modules + config.settings_dim
        self.cond = nn.Sequential(nn.Linear(cond_in, config.cond_features), nn.LeakyReLU(0.2),
                                  nn.Linear(config.cond_features, config.cond_features),
                                  nn.LeakyReLU(0.2))
        self.head = nn.Linear(config.hidden + config.cond_features, 2 * config.latent_dim)
        if config.prior == "conditional":
            self.prior_net = nn.Linear(config.cond_features, 2 * config.latent_dim)
        dec_in = config.latent_dim + (config.cond_features if config.cond_decoder else 0)
        self.dec_fc = nn.Sequential(nn.Linear(dec_in, config.hidden), nn.LeakyReLU(0.2),
                                    nn.Linear(config.hidden, flat), nn.LeakyReLU(0.2))
        ups: list[nn.Module] = []
        chans = [*filters[::-1], NUM_PROJECTIONS]
        for i in range(config.stages):  # the last stage outputs the 15 projections directly
            ups.append(nn.ConvTranspose2d(chans[i], chans[i + 1], 4, stride=2, padding=1))
            if i < config.stages - 1:
                ups += [nn.LeakyReLU(0.2), nn.BatchNorm2d(chans[i + 1])]
        self.decoder = nn.Sequential(*ups)
        self._top = filters[-1]

    @torch.no_grad()
    def init_output_bias(self, pixel_mean: torch.Tensor | npt.ArrayLike,
                         floor: float = 1e-4) -> None:
        """Set the last decoder layer's bias to ``logit(pixel_mean)`` per projection (15,),
        the mean normalised training pixel (clamped to [floor, 0.5]): the untrained decoder
        then outputs each projection's mean level instead of sigmoid(~0) = 0.5 on images
        whose pixels are mostly empty, so training does not spend its first epochs learning
        the background (the prior-probability initialisation of Lin et al. 2017)."""
        p = torch.as_tensor(pixel_mean, dtype=torch.float32).reshape(-1)
        if p.shape != (NUM_PROJECTIONS,) or not torch.isfinite(p).all():
            raise ValueError(f"pixel_mean must be {NUM_PROJECTIONS} finite values")
        last = self.decoder[-1]
        if not isinstance(last, nn.ConvTranspose2d) or last.bias is None:
            raise TypeError("the decoder must end in a ConvTranspose2d with a bias")
        last.bias.copy_(torch.logit(p.clamp(floor, 0.5)))

    # ------------------------------------------------------------------ conditioning
    def condition(self, module: torch.Tensor, settings: torch.Tensor | None = None) -> torch.Tensor:
        """Embed the module index (B,) [and settings (B, S)] -> (B, cond_features)."""
        if module.dtype.is_floating_point:
            raise TypeError("module must be an integer tensor of module indices")
        if (module < 0).any() or (module >= self.config.modules).any():
            raise ValueError(f"module index out of range 0..{self.config.modules - 1}")
        parts = [F.one_hot(module.long(), self.config.modules).float()]
        if self.config.settings_dim:
            if settings is None:
                raise ValueError("this model is conditioned on settings: pass settings")
            parts.append(settings.float())
        return self.cond(torch.cat(parts, dim=1))

    def prior(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, latent) of p(z | c)."""
        if self.config.prior == "conditional":
            mu, logvar = self.prior_net(cond).chunk(2, dim=1)
            return mu, logvar.clamp(-8.0, 4.0)
        zeros = cond.new_zeros(cond.shape[0], self.config.latent_dim)
        return zeros, zeros

    # ------------------------------------------------------------------ encode / decode
    def encode(self, images: torch.Tensor, cond: torch.Tensor, keep: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance (B, latent) of q(z | x, c).  In training mode ``keep`` (B,
        hidden) bool, when given, is the dropout mask (drawn by the caller for a whole global
        batch, so data-parallel ranks drop exactly what one process would)."""
        if keep is None or not self.training:
            h = self.enc_fc(self.encoder(images))
        else:
            flatten, linear, act, _, norm = self.enc_fc
            h = act(linear(flatten(self.encoder(images))))
            h = norm(h * keep / (1.0 - self.config.dropout))
        mu, logvar = self.head(torch.cat([h, cond], dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def draw_noise(self, batch: int, generator: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random draws of one training batch: ``eps`` (batch, latent) N(0, 1) and the dropout
        mask ``keep`` (batch, hidden) bool, on the CPU from ``generator``.  Drawn for the
        global batch on every rank and sliced by rows, they make data-parallel training equal
        to one process."""
        eps = torch.randn(batch, self.config.latent_dim, generator=generator)
        keep = torch.rand(batch, self.config.hidden, generator=generator) >= self.config.dropout
        return eps, keep

    def decode(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent) -> images (B, 15, H, W) in [0, 1]."""
        inp = torch.cat([z, cond], dim=1) if self.config.cond_decoder else z
        h = self.dec_fc(inp).view(-1, self._top, 8, 8)
        return torch.sigmoid(self.decoder(h))

    def decode_logits(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([z, cond], dim=1) if self.config.cond_decoder else z
        return self.decoder(self.dec_fc(inp).view(-1, self._top, 8, 8))

    def forward(self, images: torch.Tensor, module: torch.Tensor,
                settings: torch.Tensor | None = None, eps: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training pass.  ``eps`` (B, latent) standard-normal draws for the
        reparameterisation and ``keep`` (B, hidden) the dropout mask (see :meth:`draw_noise`);
        drawn from torch's global generator when None."""
        cond = self.condition(module, settings)
        mu, logvar = self.encode(images, cond, keep)
        if self.training:
            noise = torch.randn_like(mu) if eps is None else eps.to(mu)
            z = mu + noise * (0.5 * logvar).exp()
        else:
            z = mu
        pmu, plogvar = self.prior(cond)
        return {"logits": self.decode_logits(z, cond), "mu": mu, "logvar": logvar,
                "prior_mu": pmu, "prior_logvar": plogvar, "z": z}


def cvae_loss(out: dict[str, torch.Tensor], images: torch.Tensor,
              beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (summed BCE + beta * KL(q || p)), averaged over the batch; returns
    (loss, reconstruction, kl)."""
    b = images.shape[0]
    rec = F.binary_cross_entropy_with_logits(out["logits"], images, reduction="sum") / b
    mu, logvar, pmu, plogvar = out["mu"], out["logvar"], out["prior_mu"], out["prior_logvar"]
    kl = 0.5 * (plogvar - logvar + (logvar.exp() + (mu - pmu).square()) / plogvar.exp() - 1.0)
    kl = kl.sum() / b
    return rec + beta * kl, rec, kl
