"""The interface shared by every sequence model of the package.

A model maps observations ``x`` (N, T, Dx) to latent trajectories ``z`` (N, T, Dz) and can run
free.  One method, :meth:`SequenceModel.run`, does all of it: at steps where ``mask`` is True the
model reads the given observation, elsewhere it uses its own generated observation.  Decoding,
sampling, forecasting and imputation are the special cases of the mask.  Several stochastic
samples are drawn at once by stacking them along the batch axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Prediction", "SequenceModel", "check_mask", "check_observations", "masked_mse"]


@dataclass
class Prediction:
    """Stochastic outputs of a sequence model.

    x_samples: (S, N, T, Dx) observation trajectories (observed values where the mask was True,
        generated values elsewhere).
    z_samples: (S, N, T, Dz) latent trajectories.
    x_pred: (S, N, T, Dx) the model's one-step predictions of each observation (the mean
        before observation noise), made before it saw that step.
    """

    x_samples: torch.Tensor
    z_samples: torch.Tensor
    x_pred: torch.Tensor

    @property
    def x_mean(self) -> torch.Tensor:
        """(N, T, Dx) mean over samples."""
        return self.x_samples.mean(0)

    @property
    def z_mean(self) -> torch.Tensor:
        """(N, T, Dz) mean over samples."""
        return self.z_samples.mean(0)

    @property
    def n_samples(self) -> int:
        return int(self.x_samples.shape[0])


def check_observations(x: torch.Tensor, obs_dim: int) -> torch.Tensor:
    """Validate observations (N, T, Dx): a tensor of the right dims, finite values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"observations must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"observations must have shape (N, T, Dx), got {tuple(x.shape)}")
    if x.shape[-1] != obs_dim:
        raise ValueError(f"observations have {x.shape[-1]} features, the model expects {obs_dim}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"observations have an empty axis: shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("observations contain NaN/inf; mark missing steps with a mask instead")
    return x


def check_mask(mask: torch.Tensor | None, n: int, t_len: int,
               n_features: int) -> torch.Tensor | None:
    """Validate a mask of observed entries; return it as bool (N, T, D) or None.

    Accepted shapes: (T,) per step for every sequence, (N, T) per step, (N, T, D) per feature.
    True marks an observed value.
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    mask = mask.bool()
    if mask.ndim == 1:
        if mask.shape[0] != t_len:
            raise ValueError(f"mask has length {mask.shape[0]}, the sequences have {t_len} steps")
        mask = mask.expand(n, t_len)
    if mask.ndim == 2:
        if mask.shape != (n, t_len):
            raise ValueError(f"mask must have shape ({t_len},), ({n}, {t_len}) or "
                             f"({n}, {t_len}, {n_features}), got {tuple(mask.shape)}")
        mask = mask.unsqueeze(-1)
    if mask.ndim != 3 or mask.shape[:2] != (n, t_len) or mask.shape[2] not in (1, n_features):
        raise ValueError(f"mask must have shape ({t_len},), ({n}, {t_len}) or "
                         f"({n}, {t_len}, {n_features}), got {tuple(mask.shape)}")
    return mask.expand(n, t_len, n_features)


def masked_mse(pred: torch.Tensor, target: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the entries where ``mask`` (broadcastable bool) is True.

    ``mask=None`` is the plain mean over all entries.  With no True entry the result is 0 (and
    carries no gradient), so a batch without observations adds nothing to the loss.
    """
    if mask is None:
        return nn.functional.mse_loss(pred, target)
    mask = mask.expand_as(pred)
    sq = torch.where(mask, (pred - target) ** 2, torch.zeros_like(pred))
    return sq.sum() / mask.sum().clamp(min=1)


class SequenceModel(nn.Module):
    """Base class: subclasses implement :meth:`loss` and :meth:`_run`."""

    name = "base"
    deterministic = False

    def __init__(self, obs_dim: int, latent_dim: int) -> None:
        super().__init__()
        if obs_dim < 1 or latent_dim < 1:
            raise ValueError(f"obs_dim and latent_dim must be positive, got {obs_dim}, "
                             f"{latent_dim}")
        self.obs_dim = int(obs_dim)
        self.latent_dim = int(latent_dim)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None,
                mask: torch.Tensor | None = None,
                z_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Same as :meth:`loss` (so that a DDP-wrapped model synchronises gradients)."""
        return self.loss(x, z, mask, z_mask)

    def prepare_loss_inputs(self, x: torch.Tensor, mask: torch.Tensor | None
                            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validated mask (N, T, Dx) or None when all is observed; missing x entries zeroed
        (so that no value hidden by the mask can reach the loss, not even a NaN)."""
        mask = check_mask(mask, x.shape[0], x.shape[1], x.shape[2])
        if mask is None or bool(mask.all()):
            return x, None
        return torch.where(mask, x, torch.zeros_like(x)), mask

    # ---------------------------------------------------------------- to be implemented
    def loss(self, x: torch.Tensor, z: torch.Tensor | None = None,
             mask: torch.Tensor | None = None,
             z_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training loss on observations (N, T, Dx) and, if given, true latents (N, T, Dz).

        ``mask`` (N, T, Dx) bool marks observed entries of x (None: all); missing entries take
        no part in the loss and their values are never read.  ``z_mask`` (N, T, Dz) does the
        same for the latents.  Returns a dict with the total under "loss" and its parts.
        """
        raise NotImplementedError

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One stochastic pass over a batch; returns (x_used, z, x_pred), each (B, T, D).

        ``mask``: None (all observed) or bool (B, T, Dx), True where x is observed.
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- public inference
    def run(self, x: torch.Tensor, mask: torch.Tensor | None = None, n_samples: int = 1,
            generator: torch.Generator | None = None) -> Prediction:
        """Run over ``x`` (N, T, Dx), reading x where ``mask`` is True.

        ``mask``: (T,), (N, T) or per feature (N, T, Dx); None means everything is observed.
        Values of ``x`` at unobserved entries are ignored (NaN allowed there).  Returns
        ``n_samples`` stochastic passes.
        """
        n_feat = x.shape[-1] if isinstance(x, torch.Tensor) and x.ndim == 3 else self.obs_dim
        if isinstance(x, torch.Tensor) and x.ndim == 3:
            mask = check_mask(mask, x.shape[0], x.shape[1], n_feat)
            if mask is not None:
                x = torch.where(mask, x, torch.zeros_like(x))
        x = check_observations(x, self.obs_dim)
        n, t_len, _ = x.shape
        if mask is not None and bool(mask.all()):
            mask = None
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        s = 1 if self.deterministic else n_samples
        xs = x.unsqueeze(0).expand(s, *x.shape).reshape(s * n, t_len, -1)
        ms = None if mask is None else mask.unsqueeze(0).expand(s, *mask.shape).reshape(
            s * n, t_len, -1)
        x_used, z, x_pred = self._run(xs, ms, generator)

        def split(v: torch.Tensor) -> torch.Tensor:
            v = v.reshape(s, n, t_len, v.shape[-1])
            return v.expand(n_samples, *v.shape[1:]) if s != n_samples else v

        return Prediction(split(x_used), split(z), split(x_pred))

    @torch.no_grad()
    def decode(self, x: torch.Tensor, n_samples: int = 10,
               generator: torch.Generator | None = None) -> Prediction:
        """Infer latents from fully observed sequences (N, T, Dx)."""
        return self.run(x, None, n_samples, generator)

    @torch.no_grad()
    def sample(self, n: int, n_steps: int, n_samples: int = 1,
               generator: torch.Generator | None = None) -> Prediction:
        """Generate ``n`` sequences of ``n_steps`` from the model alone (free running)."""
        if n < 1 or n_steps < 1:
            raise ValueError(f"need n >= 1 and n_steps >= 1, got {n}, {n_steps}")
        x = torch.zeros(n, n_steps, self.obs_dim, device=self.device)
        mask = torch.zeros(n_steps, dtype=torch.bool, device=self.device)
        return self.run(x, mask, n_samples, generator)

    @torch.no_grad()
    def forecast(self, x_context: torch.Tensor, horizon: int, n_samples: int = 10,
                 generator: torch.Generator | None = None) -> Prediction:
        """Observe ``x_context`` (N, K, Dx), then run free for ``horizon`` steps.

        The returned trajectories have K + horizon steps (context first).
        """
        x_context = check_observations(x_context, self.obs_dim)
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1, got {horizon}")
        n, k, dx = x_context.shape
        x = torch.cat([x_context, x_context.new_zeros(n, horizon, dx)], dim=1)
        mask = torch.arange(k + horizon, device=x.device) < k
        return self.run(x, mask, n_samples, generator)

    @torch.no_grad()
    def impute(self, x: torch.Tensor, mask: torch.Tensor, n_samples: int = 10,
               generator: torch.Generator | None = None) -> Prediction:
        """Fill the entries of ``x`` where ``mask`` ((T,), (N, T) or (N, T, Dx)) is False with
        the model's own observations."""
        if mask is None:
            raise ValueError("impute needs a mask (True where observed)")
        return self.run(x, mask, n_samples, generator)


def randn(shape: tuple[int, ...], like: torch.Tensor,
          generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``like``'s device and dtype."""
    return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
