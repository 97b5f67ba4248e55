"""The Alternator (Rezaei and Dieng, "Alternators for Sequence Modeling", arXiv:2405.11848).

Two per-step networks alternate over time: the observation network ``f`` (latent -> observation)
and the state network ``g`` (observation -> latent).  With noise scales ``sigma_x``, ``sigma_z``
and a mixing schedule ``alpha_t``:

    z_0 ~ N(0, I)
    x_t = sqrt(1 - sigma_x^2) f(z_{t-1}) + sigma_x eps_x
    z_t = sqrt(alpha_t) g(x_t) + sqrt(1 - alpha_t - sigma_z^2) z_{t-1} + sigma_z eps_z

where ``eps`` are standard normal and ``x_t`` is the observed value at observed steps.  As in the
reference code, no noise is added at a step whose observation is given: there
``z_t = sqrt(alpha_t) g(x_t) + sqrt(1 - alpha_t - sigma_z^2) z_{t-1}``, and the initial latent is
the prior mean 0 when the first step is observed (the reference draws it with sd sigma_x; its
effect decays as ``sqrt(1 - alpha - sigma_z^2)^t``, about 0.53^t), so decoding a fully observed
sequence is deterministic.  Steps with a missing value draw ``x_t`` (observation noise
``sigma_x``; the reference used ``sigma_z`` there) and add the latent noise ``sigma_z``; a mask of
missing steps or single features is honoured in every mode (the reference ignored it whenever
observations were enabled).

Training (teacher forcing on observed x) minimises the reference objective

    L = latent_weight * sigma_x^2 * MSE(z_t, z_true_t) + obs_weight * sigma_z^2 * MSE(x_hat_t, x_t)

with ``x_hat_t = sqrt(1 - sigma_x^2) f(z_{t-1})`` and weights 1 as in the reference script, so the
balance of the two terms follows ``alpha`` and ``sigma_x`` (``loss_weighting="plain"`` drops the
sigma factors, an ablation).  Without latents only the observation term remains; the consistency
term ``consistency_weight * MSE(g(x_t), z_{t-1})`` of earlier versions of this package is in
neither the reference code nor the paper's algorithm and is off (weight 0) unless asked for.
Missing observation entries are filled with the model's own mean prediction ``x_hat_t`` and left
out of the loss.

When every step is observed, ``g`` is applied to all steps at once and the latent recursion is a
cheap linear scan, so training is vectorised over batch and time; with missing values the model
loops over time (still vectorised over the batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .base import SequenceModel, masked_mse, randn
from .bodies import make_body

__all__ = ["AlphaSchedule", "Alternator"]


@dataclass(frozen=True)
class AlphaSchedule:
    """Mixing coefficient ``alpha_t`` over time steps.

    kind: "constant" (alpha at every step, as in the reference code), "linear" or "cosine"
    (from ``alpha`` at t = 0 to ``alpha_end`` at t = ``steps`` - 1, constant afterwards).
    """

    kind: str = "constant"
    alpha: float = 0.7
    alpha_end: float = 0.7
    steps: int = 100

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "cosine"):
            raise ValueError(f"unknown alpha schedule {self.kind!r}: use constant, linear, cosine")
        for value in (self.alpha, self.alpha_end):
            if not 0.0 < value <= 1.0:
                raise ValueError(f"alpha must be in (0, 1], got {value}")
        if self.steps < 1:
            raise ValueError(f"schedule steps must be at least 1, got {self.steps}")

    @property
    def extremes(self) -> tuple[float, float]:
        if self.kind == "constant":
            return self.alpha, self.alpha
        return min(self.alpha, self.alpha_end), max(self.alpha, self.alpha_end)

    def __call__(self, n_steps: int) -> torch.Tensor:
        """alpha_t for t = 0 .. n_steps - 1, float64 tensor (n_steps,)."""
        t = torch.arange(n_steps, dtype=torch.float64)
        if self.kind == "constant":
            return torch.full((n_steps,), self.alpha, dtype=torch.float64)
        frac = (t / max(self.steps - 1, 1)).clamp(max=1.0)
        if self.kind == "linear":
            return self.alpha + (self.alpha_end - self.alpha) * frac
        return self.alpha_end + (self.alpha - self.alpha_end) * 0.5 * (1 + torch.cos(math.pi * frac))


class Alternator(SequenceModel):
    """Alternator with pluggable observation and state networks.

    Parameters
    ----------
    obs_dim, latent_dim: Dx and Dz.
    sigma_x: observation noise scale in [0, 1).
    alpha: constant mixing coefficient, or an :class:`AlphaSchedule`.
    sigma_z: latent noise scale; default ``alpha * sigma_x`` (reference code).  Needs
        ``alpha_t + sigma_z^2 <= 1`` at every step.
    obs_net, state_net: custom modules ``f`` (Dz -> Dx) and ``g`` (Dx -> Dz); by default built
        with ``body``: "mlp", "attention" (the reference's per-step self-attention bodies,
        d_model 64, 4 heads, ``layers`` encoder layers) or "conv" (image observations with
        ``obs_shape``).
    latent_weight, obs_weight: the reference's ``b`` and ``a`` (both 1 in its Lorenz script).
    loss_weighting: "reference" (sigma_x^2 on the latent term, sigma_z^2 on the observation
        term) or "plain" (no sigma factors; ablation).
    consistency_weight: weight of the optional unsupervised term MSE(g(x_t), z_{t-1}); 0 = off.
    """

    name = "alternator"

    def __init__(
        self,
        obs_dim: int,
        latent_dim: int,
        *,
        sigma_x: float = 0.2,
        alpha: float | AlphaSchedule = 0.7,
        sigma_z: float | None = None,
        obs_net: nn.Module | None = None,
        state_net: nn.Module | None = None,
        body: str = "mlp",
        hidden: int = 128,
        layers: int = 3,
        obs_shape: Sequence[int] | None = None,
        latent_weight: float = 1.0,
        obs_weight: float = 1.0,
        loss_weighting: str = "reference",
        consistency_weight: float = 0.0,
    ) -> None:
        super().__init__(obs_dim, latent_dim)
        schedule = alpha if isinstance(alpha, AlphaSchedule) else AlphaSchedule("constant", alpha,
                                                                                alpha)
        if not 0.0 <= sigma_x < 1.0:
            raise ValueError(f"sigma_x must be in [0, 1), got {sigma_x}")
        if sigma_z is None:
            sigma_z = schedule.alpha * sigma_x
        if sigma_z < 0:
            raise ValueError(f"sigma_z must be non-negative, got {sigma_z}")
        if schedule.extremes[1] + sigma_z**2 > 1.0 + 1e-12:
            raise ValueError(f"need alpha_t + sigma_z^2 <= 1, got alpha up to "
                             f"{schedule.extremes[1]} with sigma_z {sigma_z}")
        if loss_weighting not in ("reference", "plain"):
            raise ValueError(f"unknown loss_weighting {loss_weighting!r}: use reference or plain")
        if min(latent_weight, obs_weight, consistency_weight) < 0:
            raise ValueError("loss weights must be non-negative")
        if loss_weighting == "reference" and (sigma_x == 0 or sigma_z == 0):
            raise ValueError("the reference objective weights its terms by sigma_x^2 and "
                             "sigma_z^2: both must be positive (or use loss_weighting='plain')")
        self.loss_weighting = loss_weighting
        self.schedule = schedule
        self.sigma_x = float(sigma_x)
        self.sigma_z = float(sigma_z)
        self.latent_weight = float(latent_weight)
        self.obs_weight = float(obs_weight)
        self.consistency_weight = float(consistency_weight)
        self.obs_net = obs_net if obs_net is not None else make_body(
            body, latent_dim, obs_dim, role="decoder", hidden=hidden, layers=layers,
            obs_shape=obs_shape)
        self.state_net = state_net if state_net is not None else make_body(
            body, obs_dim, latent_dim, role="encoder", hidden=hidden, layers=layers,
            obs_shape=obs_shape)

    # ------------------------------------------------------------------ coefficients
    def coefficients(self, n_steps: int) -> dict[str, torch.Tensor]:
        """The recursion's coefficients for ``n_steps`` steps (float64 tensors (T,) or scalars).

        "obs_scale" sqrt(1 - sigma_x^2), "state_gain" sqrt(alpha_t), "memory"
        sqrt(1 - alpha_t - sigma_z^2), "sigma_x", "sigma_z".
        """
        alpha_t = self.schedule(n_steps)
        return {
            "alpha": alpha_t,
            "obs_scale": torch.tensor(math.sqrt(1.0 - self.sigma_x**2), dtype=torch.float64),
            "state_gain": alpha_t.sqrt(),
            "memory": (1.0 - alpha_t - self.sigma_z**2).clamp(min=0.0).sqrt(),
            "sigma_x": torch.tensor(self.sigma_x, dtype=torch.float64),
            "sigma_z": torch.tensor(self.sigma_z, dtype=torch.float64),
        }

    def _coeffs(self, n_steps: int, like: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        c = self.coefficients(n_steps)
        return (float(c["obs_scale"]), c["state_gain"].to(like), c["memory"].to(like))

    # ------------------------------------------------------------------ recursion
    def _initial(self, b: int, like: torch.Tensor, observed: torch.Tensor | None,
                 generator: torch.Generator | None) -> torch.Tensor:
        """z before the first step: the prior mean 0 where the first step is fully observed,
        a draw from N(0, I) elsewhere (free running)."""
        if observed is None:
            return like.new_zeros(b, self.latent_dim)
        z0 = randn((b, self.latent_dim), like, generator)
        return torch.where(observed[:, None], torch.zeros_like(z0), z0)

    def _scan(self, g_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free latent recursion (every step observed) given g(x_t) for every step:
        returns (z (B, T, Dz), z_prev (B, T, Dz))."""
        b, t_len, dz = g_x.shape
        _, gain, memory = self._coeffs(t_len, g_x)
        z = g_x.new_zeros(b, dz)
        states, prevs = [], []
        for t in range(t_len):
            prevs.append(z)
            z = gain[t] * g_x[:, t] + memory[t] * z
            states.append(z)
        return torch.stack(states, 1), torch.stack(prevs, 1)

    def _loop(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None,
              stochastic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step-by-step recursion with missing entries (mask (B, T, Dx), True = observed).

        ``stochastic``: missing entries are drawn (x_hat + sigma_x eps) and steps with a missing
        entry add latent noise; otherwise (training) they take the mean x_hat and no noise.
        """
        b, t_len, dx = x.shape
        obs_scale, gain, memory = self._coeffs(t_len, x)
        complete = mask.all(-1)  # (B, T) fully observed steps: no noise there
        z = self._initial(b, x, complete[:, 0], generator) if stochastic else \
            x.new_zeros(b, self.latent_dim)
        used, states, preds = [], [], []
        for t in range(t_len):
            x_hat = obs_scale * self.obs_net(z)
            fill = x_hat + self.sigma_x * randn((b, dx), x, generator) if stochastic else x_hat
            x_t = torch.where(mask[:, t], x[:, t], fill)
            z = gain[t] * self.state_net(x_t) + memory[t] * z
            if stochastic:
                eps = self.sigma_z * randn((b, self.latent_dim), x, generator)
                z = z + torch.where(complete[:, t, None], torch.zeros_like(eps), eps)
            used.append(x_t)
            states.append(z)
            preds.append(x_hat)
        return torch.stack(used, 1), torch.stack(states, 1), torch.stack(preds, 1)

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if mask is None:  # every step observed: deterministic, vectorised over time
            obs_scale = self._coeffs(x.shape[1], x)[0]
            z, z_prev = self._scan(self.state_net(x))
            return x, z, obs_scale * self.obs_net(z_prev)
        return self._loop(x, mask, generator, stochastic=True)

    # ------------------------------------------------------------------ training
    def loss_weights(self) -> tuple[float, float]:
        """(weight of the latent MSE, weight of the observation MSE) in the objective."""
        if self.loss_weighting == "reference":
            return self.latent_weight * self.sigma_x**2, self.obs_weight * self.sigma_z**2
        return self.latent_weight, self.obs_weight

    def loss(self, x: torch.Tensor, z: torch.Tensor | None = None,
             mask: torch.Tensor | None = None,
             z_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if z is not None and (z.shape[:2] != x.shape[:2] or z.shape[-1] != self.latent_dim):
            raise ValueError(f"latents must have shape {(*x.shape[:2], self.latent_dim)}, "
                             f"got {tuple(z.shape)}")
        x, mask = self.prepare_loss_inputs(x, mask)
        if mask is None:
            g_x = self.state_net(x)
            z_hat, z_prev = self._scan(g_x)
            x_hat = self._coeffs(x.shape[1], x)[0] * self.obs_net(z_prev)
        else:
            x_used, z_hat, x_hat = self._loop(x, mask, None, stochastic=False)
            z_prev = torch.cat([z_hat.new_zeros(z_hat.shape[0], 1, z_hat.shape[2]),
                                z_hat[:, :-1]], 1)
            g_x = self.state_net(x_used) if self.consistency_weight > 0 else None
        w_lat, w_obs = self.loss_weights()
        obs = masked_mse(x_hat, x, mask)
        out = {"obs_mse": obs}
        total = w_obs * obs
        if z is not None:
            lat = masked_mse(z_hat, torch.nan_to_num(z), z_mask)
            out["latent_mse"] = lat
            total = total + w_lat * lat
        elif self.consistency_weight > 0:
            cons = nn.functional.mse_loss(g_x, z_prev)
            out["consistency"] = cons
            total = total + self.consistency_weight * cons
        out["loss"] = total
        return out
