"""Proportional prioritized experience replay (Schaul et al., "Prioritized Experience Replay",
ICLR 2016) on top of :class:`~lstm_td3.buffers.replay.ReplayBuffer`.

``P(i) = p_i**alpha / sum_k p_k**alpha`` with ``p_i = |delta_i| + eps``.  Priorities live in a
:class:`~lstm_td3.buffers.sumtree.SumTree` (``O(log N)`` update and sampling); new transitions get
the running maximum priority, which is kept as a scalar (``O(1)``, no scan).  Sampling is
stratified: the total priority is cut into ``B`` equal segments and one value is drawn uniformly
in each.  Importance-sampling weights ``w_i = (N P(i))**-beta`` are normalised by the largest
weight in the batch.  The priority that is updated is the one of the sampled transition itself
(the window around it is context, not a different sample).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .replay import ReplayBuffer
from .sumtree import SumTree

__all__ = ["PrioritizedReplayBuffer", "beta_schedule"]


def beta_schedule(progress: float, beta0: float = 0.4) -> float:
    """IS exponent annealed linearly from ``beta0`` at ``progress=0`` to 1 at ``progress>=1``."""
    progress = min(max(float(progress), 0.0), 1.0)
    return beta0 + (1.0 - beta0) * progress


class PrioritizedReplayBuffer(ReplayBuffer):
    """:class:`ReplayBuffer` with proportional prioritized sampling.

    Extra parameters: ``alpha`` (priority exponent, paper 0.6) and ``eps`` (added to ``|delta|``
    so that no transition gets probability 0, fork default 1e-6).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        n_envs: int = 1,
        max_hist_len: int = 5,
        seed: int | None = None,
        alpha: float = 0.6,
        eps: float = 1e-6,
    ) -> None:
        super().__init__(obs_dim, act_dim, capacity, n_envs, max_hist_len, seed)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.tree = SumTree(self.capacity)
        self.max_priority = 1.0
        self._strata = np.zeros(0)

    def add(self, obs, act, rew, next_obs, terminated, truncated=None) -> np.ndarray:
        flat = super().add(obs, act, rew, next_obs, terminated, truncated)
        self.tree.update(flat, np.full(flat.shape, self.max_priority**self.alpha))
        return flat

    def _sample_indices(self, batch_size: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        total = self.tree.total
        if self._strata.size != batch_size:
            self._strata = np.arange(batch_size, dtype=np.float64)
        values = (self._strata + self.rng.random(batch_size)) * (total / batch_size)
        flat, pri = self.tree.find(values, return_priorities=True)
        # w_i = (N P_i)^-beta / max_j (N P_j)^-beta = (p_min / p_i)^beta over the batch
        weights = (pri.min() / pri) ** beta
        return flat, weights.astype(np.float32)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Set ``p = |td_errors| + eps`` for the sampled flat ``indices`` (both shape ``(B,)``;
        ``td_errors`` may be a torch tensor on any device)."""
        if hasattr(td_errors, "detach"):
            td_errors = td_errors.detach().cpu().numpy()
        td = np.abs(np.asarray(td_errors, dtype=np.float64).reshape(-1))
        if not np.all(np.isfinite(td)):
            raise ValueError("TD errors must be finite to be used as priorities")
        priorities = td + self.eps
        self.tree.update(np.asarray(indices, dtype=np.int64), priorities**self.alpha)
        self.max_priority = max(self.max_priority, float(priorities.max()))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["priorities"] = self.tree.get(np.arange(len(self)))
        state["max_priority"] = self.max_priority
        state["alpha"] = self.alpha
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if float(state["alpha"]) != self.alpha:
            raise ValueError(f"replay state has alpha={state['alpha']}, this buffer {self.alpha}")
        self.tree = SumTree(self.capacity)
        pri = np.asarray(state["priorities"], dtype=np.float64)
        self.tree.update(np.arange(pri.size), pri)
        self.max_priority = float(state["max_priority"])
