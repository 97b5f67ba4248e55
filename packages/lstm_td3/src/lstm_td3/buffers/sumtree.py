"""Array sum tree for proportional prioritized replay (Schaul et al., ICLR 2016).

Leaves hold non-negative priorities ``p_i**alpha``; every internal node holds the sum of its two
children, so the total is the root.  Updates and prefix-sum searches are ``O(log N)`` and are
vectorised over a batch of leaves: one NumPy operation per tree level, never a Python loop per
leaf.  Internal nodes are recomputed from their children (not incremented by deltas), so floating
point drift cannot accumulate over millions of updates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SumTree"]


class SumTree:
    """Binary sum tree over ``capacity`` leaves.

    The leaf count is rounded up to a power of two (``n_leaves``); the extra leaves keep priority
    0 and are never sampled.  Node ``1`` is the root, node ``k`` has children ``2k`` and ``2k+1``
    and leaf ``i`` lives at node ``n_leaves + i``.

    Parameters
    ----------
    capacity:
        Number of addressable leaves (transitions), ``>= 1``.
    """

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)):
            raise TypeError(f"capacity must be an integer, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.depth = max(1, int(np.ceil(np.log2(self.capacity))))
        self.n_leaves = 1 << self.depth
        self.tree = np.zeros(2 * self.n_leaves, dtype=np.float64)

    @property
    def total(self) -> float:
        """Sum of all leaf priorities."""
        return float(self.tree[1])

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Leaf priorities at ``indices`` (shape ``(B,)``)."""
        return self.tree[self.n_leaves + np.asarray(indices, dtype=np.int64)]

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set leaves ``indices`` (shape ``(B,)``) to ``priorities`` (shape ``(B,)``, >= 0).

        Repeated indices take the last value.  Cost ``O(B log N)`` in ``depth`` vector steps.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        pri = np.asarray(priorities, dtype=np.float64).reshape(-1)
        if idx.shape != pri.shape:
            raise ValueError(f"{idx.size} indices but {pri.size} priorities")
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self.capacity:
            raise IndexError(f"leaf index out of range [0, {self.capacity})")
        if not np.all(np.isfinite(pri)) or pri.min() < 0:
            raise ValueError("priorities must be finite and non-negative")
        nodes = idx + self.n_leaves
        self.tree[nodes] = pri
        nodes = np.unique(nodes >> 1)
        for _ in range(self.depth):
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            nodes = np.unique(nodes >> 1)

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf index whose cumulative-priority interval contains each of ``values`` (shape ``(B,)``).

        ``values`` are clipped to ``[0, total)``; a leaf with priority 0 is never returned while
        the total is positive.
        """
        total = self.tree[1]
        if total <= 0:
            raise ValueError("cannot sample from a sum tree whose total priority is 0")
        v = np.clip(np.asarray(values, dtype=np.float64).reshape(-1), 0.0, total)
        nodes = np.ones(v.shape, dtype=np.int64)
        for _ in range(self.depth):
            left = 2 * nodes
            left_sum = self.tree[left]
            go_right = (v >= left_sum) & (self.tree[left + 1] > 0)
            # rounding can leave v >= left_sum with an empty right subtree: stay left then
            v = np.where(go_right, v - left_sum, v)
            nodes = left + go_right
        return nodes - self.n_leaves
