"""LSTM-TD3: memory-based TD3 for partially observable control (Meng et al., arXiv 2102.12344),
with prioritized replay, POMDP wrappers and vector environments."""

from importlib.metadata import PackageNotFoundError, version

from .agent import LSTMTD3, TD3Config
from .buffers import Batch, PrioritizedReplayBuffer, ReplayBuffer, SumTree, beta_schedule
from .history import ActingHistory
from .networks import Actor, Critic, NetworkConfig, TwinCritic

try:
    __version__ = version("lstm-td3")
except PackageNotFoundError:  # pragma: no cover - source tree without metadata
    __version__ = "0.0.0"

__all__ = [
    "LSTMTD3",
    "ActingHistory",
    "Actor",
    "Batch",
    "Critic",
    "NetworkConfig",
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "SumTree",
    "TD3Config",
    "TwinCritic",
    "__version__",
    "beta_schedule",
]
