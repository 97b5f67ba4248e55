"""Replay buffer with history windows for memory-based agents (LSTM-TD3, Meng et al. 2021).

Storage is preallocated and circular, one row per vector-env step and one column per env, so the
transitions of ``n_envs`` parallel environments live in one buffer as separate streams.  For a
sampled transition ``(row t, env e)`` the agent needs

* the *history window*: the up-to-``L`` transitions of the same episode and env that precede it,
  ``[t - h, t)`` with ``h = min(L, steps since the episode start, rows still stored before t)``;
* the *next history window*: the window of the next observation, ``[t + 1 - h', t + 1)`` with
  ``h' = min(L, h_episode + 1, stored + 1)``.

Both are gathered for the whole batch with one fancy-indexing operation on ``(B, L)`` index
arrays taken modulo the row count, so wrap-around of the circular storage is handled by
construction and no Python loop runs per sample.  Windows are left-aligned: entries
``[0, h)`` are real, the rest are zero, and the network reads its LSTM output at step ``h - 1``
(a zero-length history counts as one zero step), as in the paper's code.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["Batch", "ReplayBuffer", "TensorBatch"]


class Batch(NamedTuple):
    """A sampled minibatch; ``B`` transitions, windows of width ``W = max(max_hist_len, 1)``.

    Fields: ``obs`` (B, obs_dim), ``act`` (B, act_dim), ``rew`` (B,), ``next_obs`` (B, obs_dim),
    ``done`` (B,) 1.0 only for true termination (time-limit truncation is 0), ``hist_obs``
    (B, W, obs_dim), ``hist_act`` (B, W, act_dim), ``hist_len`` (B,) int64, ``next_hist_obs``,
    ``next_hist_act``, ``next_hist_len`` likewise for the next observation, ``weights`` (B,)
    importance-sampling weights (all 1 for uniform replay) and ``indices`` (B,) flat buffer
    indices (``row * n_envs + env``) to pass back to ``update_priorities``.
    """

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    next_obs: np.ndarray
    done: np.ndarray
    hist_obs: np.ndarray
    hist_act: np.ndarray
    hist_len: np.ndarray
    next_hist_obs: np.ndarray
    next_hist_act: np.ndarray
    next_hist_len: np.ndarray
    weights: np.ndarray
    indices: np.ndarray


class TensorBatch(NamedTuple):
    """A :class:`Batch` as tensors on the learner's device (same fields and shapes;
    ``indices`` stays a host array, it is only for the replay buffer)."""

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor
    hist_obs: torch.Tensor
    hist_act: torch.Tensor
    hist_len: torch.Tensor
    next_hist_obs: torch.Tensor
    next_hist_act: torch.Tensor
    next_hist_len: torch.Tensor
    weights: torch.Tensor
    indices: np.ndarray


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class ReplayBuffer:
    """Uniform replay over ``n_envs`` interleaved env streams with vectorised history windows.

    Parameters
    ----------
    obs_dim, act_dim:
        Sizes of the flat observation and action vectors.
    capacity:
        Total number of transitions kept (rounded up to a multiple of ``n_envs``).
    n_envs:
        Number of parallel environments whose steps are added together by :meth:`add`.
    max_hist_len:
        History window length ``L`` (0 = no memory: windows are one zero step).
    seed:
        Seed of the buffer's own random generator (sampling).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        n_envs: int = 1,
        max_hist_len: int = 5,
        seed: int | None = None,
    ) -> None:
        self.obs_dim = _check_int("obs_dim", obs_dim, 1)
        self.act_dim = _check_int("act_dim", act_dim, 1)
        self.n_envs = _check_int("n_envs", n_envs, 1)
        capacity = _check_int("capacity", capacity, 1)
        self.max_hist_len = _check_int("max_hist_len", max_hist_len, 0)
        self.rows = max(2, -(-capacity // self.n_envs))
        self.capacity = self.rows * self.n_envs
        self.window = max(self.max_hist_len, 1)
        shape = (self.rows, self.n_envs)
        # observations and actions side by side, so one gather fetches both for a window
        self._oa = np.zeros((*shape, self.obs_dim + self.act_dim), dtype=np.float32)
        self._oa_flat = self._oa.reshape(self.rows * self.n_envs, -1)
        self.obs = self._oa[..., : self.obs_dim]
        self.act = self._oa[..., self.obs_dim :]
        self.rew = np.zeros(shape, dtype=np.float32)
        self.next_obs = np.zeros((*shape, self.obs_dim), dtype=np.float32)
        self.done = np.zeros(shape, dtype=np.float32)
        # position of each transition inside its episode (0 = first step after a reset)
        self.ep_step = np.zeros(shape, dtype=np.int64)
        self.ptr = 0
        self.filled_rows = 0
        self._ep_counter = np.zeros(self.n_envs, dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self._offsets = np.arange(self.window, dtype=np.int64)
        self._offsets_plus = np.arange(self.window + 1, dtype=np.int64)
        self.device: torch.device | None = None  # set by attach_device

    # ------------------------------------------------------------------ storage
    def __len__(self) -> int:
        """Number of stored transitions (all envs)."""
        return self.filled_rows * self.n_envs

    def add(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        rew: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray | None = None,
    ) -> np.ndarray:
        """Store one step of every env; returns the flat indices written, shape ``(n_envs,)``.

        ``obs``/``next_obs`` have shape ``(n_envs, obs_dim)``, ``act`` ``(n_envs, act_dim)``,
        ``rew``/``terminated``/``truncated`` ``(n_envs,)``.  ``next_obs`` must be the *true* next
        observation (the final one when an episode ended, not the reset observation).  Only
        ``terminated`` stops bootstrapping; ``terminated | truncated`` ends the episode for the
        history windows.
        """
        n = self.n_envs
        obs = np.asarray(obs, dtype=np.float32).reshape(n, self.obs_dim)
        act = np.asarray(act, dtype=np.float32).reshape(n, self.act_dim)
        next_obs = np.asarray(next_obs, dtype=np.float32).reshape(n, self.obs_dim)
        rew = np.asarray(rew, dtype=np.float32).reshape(n)
        term = np.asarray(terminated, dtype=bool).reshape(n)
        trunc = np.zeros(n, dtype=bool) if truncated is None else np.asarray(truncated, bool)
        trunc = trunc.reshape(n)
        row = self.ptr
        self.obs[row] = obs
        self.act[row] = act
        self.rew[row] = rew
        self.next_obs[row] = next_obs
        self.done[row] = term
        self.ep_step[row] = self._ep_counter
        self._ep_counter = np.where(term | trunc, 0, self._ep_counter + 1)
        if self.device is not None:
            self._mirror_rows(slice(row * n, (row + 1) * n))
        self.ptr = (row + 1) % self.rows
        self.filled_rows = min(self.filled_rows + 1, self.rows)
        return row * n + np.arange(n, dtype=np.int64)

    def end_episodes(self, mask: np.ndarray | None = None) -> None:
        """Start a new episode for the envs in ``mask`` (all by default), e.g. after a manual
        reset or when training resumes, so that no history window spans the cut."""
        if mask is None:
            self._ep_counter[:] = 0
        else:
            self._ep_counter[np.asarray(mask, dtype=bool).reshape(self.n_envs)] = 0

    # ------------------------------------------------------------------ sampling
    def _sample_indices(self, batch_size: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
        flat = self.rng.integers(0, len(self), size=batch_size, dtype=np.int64)
        return flat, np.ones(batch_size, dtype=np.float32)

    def sample(self, batch_size: int, beta: float = 1.0) -> Batch:
        """Draw ``batch_size`` transitions (uniformly here) with their history windows."""
        batch_size = _check_int("batch_size", batch_size, 1)
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        flat, weights = self._sample_indices(batch_size, beta)
        return self.gather(flat, weights)

    def gather(self, flat: np.ndarray, weights: np.ndarray | None = None) -> Batch:
        """Build the :class:`Batch` for flat indices ``flat`` (shape ``(B,)``), vectorised."""
        flat = np.asarray(flat, dtype=np.int64)
        rows, envs = np.divmod(flat, self.n_envs)
        if weights is None:
            weights = np.ones(flat.shape, dtype=np.float32)
        full = self.filled_rows == self.rows
        # rows still stored before row t in its stream (the oldest stored row is `ptr` once full)
        n_before = (rows - self.ptr) % self.rows if full else rows
        L, W, od = self.max_hist_len, self.window, self.obs_dim
        m = np.minimum(self.ep_step.reshape(-1)[flat], n_before)  # same-episode rows before t
        h = np.minimum(m, L)
        h_next = np.minimum(m + 1, L)
        # one block of W+1 rows from the window start t-h covers both windows: the next window
        # starts at the same row while it still grows (h' = h+1) and one row later once full
        block_rows = (rows - h)[:, None] + self._offsets_plus
        block = np.take(self._oa_flat, (block_rows % self.rows) * self.n_envs + envs[:, None],
                        axis=0)  # (B, W+1, obs_dim+act_dim)
        hist = block[:, :W] * (self._offsets < h[:, None])[..., None]
        nxt = np.where((m >= L)[:, None, None], block[:, 1:], block[:, :W])
        nxt *= (self._offsets < h_next[:, None])[..., None]
        oa = np.take(self._oa_flat, flat, axis=0)
        return Batch(
            obs=oa[:, :od],
            act=oa[:, od:],
            rew=self.rew.reshape(-1)[flat],
            next_obs=np.take(self.next_obs.reshape(-1, od), flat, axis=0),
            done=self.done.reshape(-1)[flat],
            hist_obs=hist[..., :od],
            hist_act=hist[..., od:],
            hist_len=h,
            next_hist_obs=nxt[..., :od],
            next_hist_act=nxt[..., od:],
            next_hist_len=h_next,
            weights=np.asarray(weights, dtype=np.float32),
            indices=flat,
        )

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """No-op for uniform replay (kept so agents need not check the buffer type)."""

    # ------------------------------------------------------------------ device mirror
    def _h2d(self, x: np.ndarray) -> torch.Tensor:
        """Host array -> tensor on :attr:`device`; through pinned memory and a non-blocking
        copy on CUDA (torch's caching host allocator keeps the pinned block until the copy is
        done, so no staging buffer is overwritten in flight)."""
        device = self.device
        if device is None:
            raise RuntimeError("no device attached: call attach_device first")
        t = torch.from_numpy(np.ascontiguousarray(x))
        if device.type == "cuda":
            return t.pin_memory().to(device, non_blocking=True)
        return t.to(device, copy=True)

    def attach_device(self, device: torch.device | str) -> None:
        """Keep a copy of the storage on ``device`` (written by every :meth:`add`), so that
        :meth:`sample_device` gathers the history windows there: per batch only the sampled
        indices and weights cross to the device, as pinned non-blocking copies on CUDA.  Call
        after :meth:`load_state_dict` (it copies the whole storage)."""
        self.device = torch.device(device)
        n = self.rows * self.n_envs
        self._d_oa = self._h2d(self._oa_flat)
        self._d_rew = self._h2d(self.rew.reshape(n))
        self._d_next_obs = self._h2d(self.next_obs.reshape(n, self.obs_dim))
        self._d_done = self._h2d(self.done.reshape(n))
        self._d_ep_step = self._h2d(self.ep_step.reshape(n))
        self._d_offsets = torch.arange(self.window, device=self.device)
        self._d_offsets_plus = torch.arange(self.window + 1, device=self.device)

    def _mirror_rows(self, sl: slice) -> None:
        n = self.rows * self.n_envs
        self._d_oa[sl] = self._h2d(self._oa_flat[sl])
        self._d_rew[sl] = self._h2d(self.rew.reshape(n)[sl])
        self._d_next_obs[sl] = self._h2d(self.next_obs.reshape(n, self.obs_dim)[sl])
        self._d_done[sl] = self._h2d(self.done.reshape(n)[sl])
        self._d_ep_step[sl] = self._h2d(self.ep_step.reshape(n)[sl])

    def sample_device(self, batch_size: int, beta: float = 1.0) -> TensorBatch:
        """:meth:`sample` with the windows gathered on :attr:`device` (see
        :meth:`attach_device`): the same indices (same host generator), the same values, as
        tensors; ``indices`` stays a NumPy array for :meth:`update_priorities`."""
        if self.device is None:
            raise ValueError("sample_device needs attach_device first")
        batch_size = _check_int("batch_size", batch_size, 1)
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        flat, weights = self._sample_indices(batch_size, beta)
        return self.gather_device(flat, weights)

    def gather_device(self, flat: np.ndarray, weights: np.ndarray | None = None
                      ) -> TensorBatch:
        """:meth:`gather` on the device: the same index arithmetic in torch ops."""
        flat_np = np.asarray(flat, dtype=np.int64)
        if weights is None:
            weights = np.ones(flat_np.shape, dtype=np.float32)
        idx = self._h2d(flat_np)
        w = self._h2d(np.asarray(weights, dtype=np.float32))
        n, R, L, W, od = self.n_envs, self.rows, self.max_hist_len, self.window, self.obs_dim
        rows, envs = idx // n, idx % n
        n_before = (rows - self.ptr) % R if self.filled_rows == R else rows
        m = torch.minimum(self._d_ep_step[idx], n_before)
        h = m.clamp(max=L)
        h_next = (m + 1).clamp(max=L)
        block_rows = (rows - h)[:, None] + self._d_offsets_plus
        block = self._d_oa[(block_rows % R) * n + envs[:, None]]  # (B, W+1, od+ad)
        hist = block[:, :W] * (self._d_offsets < h[:, None])[..., None]
        nxt = torch.where((m >= L)[:, None, None], block[:, 1:], block[:, :W])
        nxt = nxt * (self._d_offsets < h_next[:, None])[..., None]
        oa = self._d_oa[idx]
        return TensorBatch(
            obs=oa[:, :od], act=oa[:, od:], rew=self._d_rew[idx],
            next_obs=self._d_next_obs[idx], done=self._d_done[idx],
            hist_obs=hist[..., :od], hist_act=hist[..., od:], hist_len=h,
            next_hist_obs=nxt[..., :od], next_hist_act=nxt[..., od:], next_hist_len=h_next,
            weights=w, indices=flat_np,
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Plain state (NumPy arrays of the filled rows and scalars) for checkpoints."""
        n = self.filled_rows
        return {
            "kind": type(self).__name__,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "n_envs": self.n_envs,
            "rows": self.rows,
            "max_hist_len": self.max_hist_len,
            "ptr": self.ptr,
            "filled_rows": n,
            "ep_counter": self._ep_counter.copy(),
            "rng": json.dumps(self.rng.bit_generator.state),
            "obs": self.obs[:n].copy(),
            "act": self.act[:n].copy(),
            "rew": self.rew[:n].copy(),
            "next_obs": self.next_obs[:n].copy(),
            "done": self.done[:n].copy(),
            "ep_step": self.ep_step[:n].copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output into this (identically shaped) buffer."""
        for key in ("obs_dim", "act_dim", "n_envs", "rows", "max_hist_len"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"replay state has {key}={int(state[key])} but this buffer has "
                    f"{getattr(self, key)}"
                )
        if state.get("kind", type(self).__name__) != type(self).__name__:
            raise ValueError(f"replay state is a {state['kind']}, not a {type(self).__name__}")
        n = int(state["filled_rows"])
        for key in ("obs", "act", "rew", "next_obs", "done", "ep_step"):
            getattr(self, key)[:n] = np.asarray(state[key])
        self.ptr = int(state["ptr"])
        self.filled_rows = n
        self._ep_counter = np.asarray(state["ep_counter"], dtype=np.int64).copy()
        self.rng.bit_generator.state = json.loads(str(state["rng"]))
