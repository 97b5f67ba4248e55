"""Replay storage: uniform replay with history windows, prioritized replay and its sum tree."""

from .per import PrioritizedReplayBuffer, beta_schedule
from .replay import Batch, ReplayBuffer
from .sumtree import SumTree

__all__ = ["Batch", "PrioritizedReplayBuffer", "ReplayBuffer", "SumTree", "beta_schedule"]
