"""Per-env acting history: the last ``L`` (observation, action) pairs of the current episode.

At acting time the agent needs the same left-aligned window that the replay buffer builds for a
stored transition: the ``h = min(L, t)`` pairs that precede step ``t`` of the episode, zero padded
on the right.  Each of ``n_envs`` streams is reset on its own when its episode ends.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ActingHistory"]


class ActingHistory:
    """Shifting windows ``obs`` (n_envs, W, obs_dim), ``act`` (n_envs, W, act_dim), ``length``
    (n_envs,), with ``W = max(max_hist_len, 1)``; ``max_hist_len = 0`` keeps them empty."""

    def __init__(self, n_envs: int, obs_dim: int, act_dim: int, max_hist_len: int) -> None:
        if n_envs < 1 or obs_dim < 1 or act_dim < 1 or max_hist_len < 0:
            raise ValueError(
                f"invalid history shape n_envs={n_envs} obs_dim={obs_dim} act_dim={act_dim} "
                f"max_hist_len={max_hist_len}"
            )
        self.n_envs = n_envs
        self.max_hist_len = max_hist_len
        width = max(max_hist_len, 1)
        self.obs = np.zeros((n_envs, width, obs_dim), dtype=np.float32)
        self.act = np.zeros((n_envs, width, act_dim), dtype=np.float32)
        self.length = np.zeros(n_envs, dtype=np.int64)
        self._rows = np.arange(n_envs)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Empty the windows of the envs in ``mask`` (bool (n_envs,); all when ``None``)."""
        if mask is None:
            mask = np.ones(self.n_envs, dtype=bool)
        mask = np.asarray(mask, dtype=bool).reshape(self.n_envs)
        self.obs[mask] = 0.0
        self.act[mask] = 0.0
        self.length[mask] = 0

    def push(self, obs: np.ndarray, act: np.ndarray) -> None:
        """Append the pair taken at the current step: ``obs`` (n_envs, obs_dim), ``act``
        (n_envs, act_dim); full windows drop their oldest entry."""
        L = self.max_hist_len
        if L == 0:
            return
        full = self.length >= L
        if full.any():
            self.obs[full, :-1] = self.obs[full, 1:]
            self.act[full, :-1] = self.act[full, 1:]
        pos = np.minimum(self.length, L - 1)
        self.obs[self._rows, pos] = obs
        self.act[self._rows, pos] = act
        self.length = np.minimum(self.length + 1, L)
