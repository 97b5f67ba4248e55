"""Replay storage: uniform replay with history windows, prioritized replay and its sum tree."""

from .per import PrioritizedReplayBuffer, beta_schedule
from .replay import Batch, ReplayBuffer, TensorBatch
from .sumtree import SumTree

__all__ = ["Batch", "PrioritizedReplayBuffer", "ReplayBuffer", "SumTree", "TensorBatch",
           "beta_schedule"]
