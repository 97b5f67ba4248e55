"""Variational recurrent neural network baseline (Chung et al., "A Recurrent Latent Variable
Model for Sequential Data", NeurIPS 2015).

    prior      p(s_t | h_{t-1})          = N(mu_p, diag sd_p^2)
    posterior  q(s_t | x_t, h_{t-1})     = N(mu_q, diag sd_q^2)
    emission   p(x_t | s_t, h_{t-1})     = N(mu_x, diag exp(2 log_sd_x))
    recurrence h_t = GRU([phi_x(x_t), phi_s(s_t)], h_{t-1})

with a stochastic state ``s_t`` of size ``stochastic_dim``.  The training loss is the negative
ELBO per observation feature; in the supervised (decoding) setting a readout ``z_t = r(h_t)`` is
trained with ``latent_weight * MSE(z_t, z_true_t)``.  Without latent supervision the reported
latent is the readout too, which is then untrained and meaningless (use the Alternator).
At unobserved steps the stochastic state comes from the prior and the observation from the
emission, fed back into the recurrence; at partly observed steps the missing features take
the prior's one-step prediction (a step counts as observed when any feature is).
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SequenceModel, masked_mse, randn
from .bodies import mlp

__all__ = ["VRNN"]


class VRNN(SequenceModel):
    name = "vrnn"

    def __init__(self, obs_dim: int, latent_dim: int, *, hidden: int = 128,
                 stochastic_dim: int = 16, layers: int = 2, kl_weight: float = 1.0,
                 latent_weight: float = 1.0) -> None:
        super().__init__(obs_dim, latent_dim)
        self.hidden = int(hidden)
        self.stochastic_dim = int(stochastic_dim)
        self.kl_weight = float(kl_weight)
        self.latent_weight = float(latent_weight)
        self.phi_x = mlp(obs_dim, hidden, hidden, layers - 1)
        self.phi_s = mlp(stochastic_dim, hidden, hidden, 0)
        self.prior = mlp(hidden, 2 * stochastic_dim, hidden, 1)
        self.encoder = mlp(2 * hidden, 2 * stochastic_dim, hidden, layers - 1)
        self.decoder = mlp(2 * hidden, obs_dim, hidden, layers - 1)
        self.log_sd_x = nn.Parameter(torch.zeros(obs_dim))
        self.cell = nn.GRUCell(2 * hidden, hidden)
        self.readout = mlp(hidden, latent_dim, hidden, 1)

    @staticmethod
    def _gauss(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, raw = params.chunk(2, dim=-1)
        return mu, nn.functional.softplus(raw) + 1e-4

    def _step(self, x_t: torch.Tensor | None, observed: torch.Tensor | None, h: torch.Tensor,
              generator: torch.Generator | None, sample: bool = True) -> dict[str, torch.Tensor]:
        mu_p, sd_p = self._gauss(self.prior(h))
        b = h.shape[0]
        s_prior = mu_p + sd_p * randn((b, self.stochastic_dim), h, generator) if sample else mu_p
        x_pred = self.decoder(torch.cat([self.phi_s(mu_p), h], -1))
        out = {"mu_p": mu_p, "sd_p": sd_p, "x_pred": x_pred}
        if observed is not None and x_t is not None:
            x_t = torch.where(observed, x_t, x_pred)  # missing features: the prior prediction
            observed_any = observed.any(-1)
        if x_t is None:
            s = s_prior
        else:
            mu_q, sd_q = self._gauss(self.encoder(torch.cat([self.phi_x(x_t), h], -1)))
            s_post = mu_q + sd_q * randn((b, self.stochastic_dim), h, generator)
            out.update(mu_q=mu_q, sd_q=sd_q)
            s = s_post if observed is None else torch.where(observed_any[:, None], s_post, s_prior)
        phi_s = self.phi_s(s)
        mu_x = self.decoder(torch.cat([phi_s, h], -1))
        x_gen = mu_x + self.log_sd_x.exp() * randn(tuple(mu_x.shape), h, generator)
        if x_t is None:
            x_used = x_gen
        elif observed is None:
            x_used = x_t
        else:
            x_used = torch.where(observed, x_t, x_gen)
        h = self.cell(torch.cat([self.phi_x(x_used), phi_s], -1), h)
        out.update(mu_x=mu_x, x_used=x_used, h=h, z=self.readout(h))
        return out

    def _observed_pass(self, x: torch.Tensor, generator: torch.Generator | None,
                       mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Teacher-forced pass: only the posterior sample and the recurrence run step by step;
        prior, emission and readout are applied to all steps at once afterwards.  With a mask
        (training on data with gaps), missing features take the prior's one-step prediction."""
        b, t_len, _ = x.shape
        px = self.phi_x(x) if mask is None else None
        eps = randn((b, t_len, self.stochastic_dim), x, generator)
        h = x.new_zeros(b, self.hidden)
        prev, phis, hs, mus, sds = [], [], [], [], []
        for t in range(t_len):
            if px is not None:  # fully observed: phi_x of every step at once
                px_t = px[:, t]
            elif mask is not None:
                mu_prior = self._gauss(self.prior(h))[0]
                x_fill = self.decoder(torch.cat([self.phi_s(mu_prior), h], -1))
                px_t = self.phi_x(torch.where(mask[:, t], x[:, t], x_fill))
            mu_q, sd_q = self._gauss(self.encoder(torch.cat([px_t, h], -1)))
            phi_s = self.phi_s(mu_q + sd_q * eps[:, t])
            prev.append(h)
            h = self.cell(torch.cat([px_t, phi_s], -1), h)
            phis.append(phi_s)
            hs.append(h)
            mus.append(mu_q)
            sds.append(sd_q)
        h_prev = torch.stack(prev, 1)
        mu_p, sd_p = self._gauss(self.prior(h_prev))
        return {
            "mu_q": torch.stack(mus, 1), "sd_q": torch.stack(sds, 1), "mu_p": mu_p, "sd_p": sd_p,
            "mu_x": self.decoder(torch.cat([torch.stack(phis, 1), h_prev], -1)),
            "x_pred": self.decoder(torch.cat([self.phi_s(mu_p), h_prev], -1)),
            "z": self.readout(torch.stack(hs, 1)),
        }

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if mask is None:
            out = self._observed_pass(x, generator)
            return x, out["z"], out["x_pred"]
        b, t_len, _ = x.shape
        h = x.new_zeros(b, self.hidden)
        used, states, preds = [], [], []
        for t in range(t_len):
            out = self._step(x[:, t], mask[:, t], h, generator)
            h = out["h"]
            used.append(out["x_used"])
            states.append(out["z"])
            preds.append(out["x_pred"])
        return torch.stack(used, 1), torch.stack(states, 1), torch.stack(preds, 1)

    def loss(self, x: torch.Tensor, z: torch.Tensor | None = None,
             mask: torch.Tensor | None = None,
             z_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        dx = x.shape[-1]
        x, mask = self.prepare_loss_inputs(x, mask)
        out = self._observed_pass(x, None, mask)
        log_sd = self.log_sd_x
        nll_terms = 0.5 * ((x - out["mu_x"]) / log_sd.exp()) ** 2 + log_sd
        if mask is None:
            nll = nll_terms.sum(-1).mean()
        else:  # per observed feature, scaled back to a full step
            nll = torch.where(mask, nll_terms, torch.zeros_like(nll_terms)).sum() \
                / mask.sum().clamp(min=1) * dx
        kl = (torch.log(out["sd_p"] / out["sd_q"])
              + (out["sd_q"] ** 2 + (out["mu_q"] - out["mu_p"]) ** 2) / (2 * out["sd_p"] ** 2)
              - 0.5).sum(-1).mean()
        nll = nll / dx
        kl = kl / dx
        result = {"nll": nll, "kl": kl}
        total = nll + self.kl_weight * kl
        if z is not None:
            lat = masked_mse(out["z"], torch.nan_to_num(z), z_mask)
            result["latent_mse"] = lat
            total = total + self.latent_weight * lat
        result["loss"] = total
        return result
