"""The Alternator (Rezaei and Dieng, "Alternators for Sequence Modeling", arXiv:2405.11848).

Two per-step networks alternate over time: the observation network ``f`` (latent -> observation)
and the state network ``g`` (observation -> latent).  With noise scales ``sigma_x``, ``sigma_z``
and a mixing schedule ``alpha_t``:

    z_0 ~ N(0, I)
    x_t = sqrt(1 - sigma_x^2) f(z_{t-1}) + sigma_x eps_x
    z_t = sqrt(alpha_t) g(x_t) + sqrt(1 - alpha_t - sigma_z^2) z_{t-1} + sigma_z eps_z

where ``eps`` are standard normal and ``x_t`` is the observed value at observed steps.  Unlike the
reference code, the observation noise uses ``sigma_x`` (not ``sigma_z``) and a mask of missing
steps is honoured in every mode.

Training (teacher forcing on observed x) minimises the reference's weighted squared errors:
supervised, ``latent_weight * MSE(z_t, z_true_t) + obs_weight * MSE(x_hat_t, x_t)``, with
``x_hat_t = sqrt(1 - sigma_x^2) f(z_{t-1})``; unsupervised, the observation term plus
``consistency_weight * MSE(g(x_t), z_{t-1})`` (the latent extracted from a new observation should
agree with the latent propagated from the past).

When every step is observed, ``g`` is applied to all steps at once and the latent recursion is a
cheap linear scan, so training is vectorised over batch and time; with missing steps the model
loops over time (still vectorised over the batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .base import SequenceModel, randn
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
        with ``body`` ("mlp" or "conv", the latter for image observations with ``obs_shape``).
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
        obs_weight: float = 0.5,
        consistency_weight: float = 0.1,
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
    def _scan(self, g_x: torch.Tensor, generator: torch.Generator | None,
              noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent recursion given g(x_t) for every step: returns (z (B,T,Dz), z_prev (B,T,Dz))."""
        b, t_len, dz = g_x.shape
        _, gain, memory = self._coeffs(t_len, g_x)
        z = randn((b, dz), g_x, generator)  # z_0 ~ N(0, I)
        eps = randn((b, t_len, dz), g_x, generator) * self.sigma_z if noise else None
        states, prevs = [], []
        for t in range(t_len):
            prevs.append(z)
            z = gain[t] * g_x[:, t] + memory[t] * z
            if eps is not None:
                z = z + eps[:, t]
            states.append(z)
        return torch.stack(states, 1), torch.stack(prevs, 1)

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t_len, dx = x.shape
        obs_scale, gain, memory = self._coeffs(t_len, x)
        if mask is None:  # every step observed: vectorised over time
            z, z_prev = self._scan(self.state_net(x), generator)
            return x, z, obs_scale * self.obs_net(z_prev)
        z = randn((b, self.latent_dim), x, generator)
        used, states, preds = [], [], []
        for t in range(t_len):
            x_hat = obs_scale * self.obs_net(z)
            x_gen = x_hat + self.sigma_x * randn((b, dx), x, generator)
            x_t = torch.where(mask[:, t, None], x[:, t], x_gen)
            z = (gain[t] * self.state_net(x_t) + memory[t] * z
                 + self.sigma_z * randn((b, self.latent_dim), x, generator))
            used.append(x_t)
            states.append(z)
            preds.append(x_hat)
        return torch.stack(used, 1), torch.stack(states, 1), torch.stack(preds, 1)

    # ------------------------------------------------------------------ training
    def loss(self, x: torch.Tensor, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if z is not None and (z.shape[:2] != x.shape[:2] or z.shape[-1] != self.latent_dim):
            raise ValueError(f"latents must have shape {(*x.shape[:2], self.latent_dim)}, "
                             f"got {tuple(z.shape)}")
        obs_scale = self._coeffs(x.shape[1], x)[0]
        g_x = self.state_net(x)
        z_hat, z_prev = self._scan(g_x, None)
        x_hat = obs_scale * self.obs_net(z_prev)
        obs = nn.functional.mse_loss(x_hat, x)
        out = {"obs_mse": obs}
        if z is not None:
            lat = nn.functional.mse_loss(z_hat, z)
            out["latent_mse"] = lat
            out["loss"] = self.latent_weight * lat + self.obs_weight * obs
        else:
            cons = nn.functional.mse_loss(g_x, z_prev)
            out["consistency"] = cons
            out["loss"] = self.obs_weight * obs + self.consistency_weight * cons
        return out
