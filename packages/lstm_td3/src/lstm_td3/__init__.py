"""LSTM-TD3: memory-based TD3 for partially observable control (Meng et al., arXiv 2102.12344),
with prioritized replay, POMDP wrappers and vector environments."""

from importlib.metadata import PackageNotFoundError, version

from .agent import LSTMTD3, TD3Config
from .artifacts import LoadedAgent, load_agent
from .buffers import Batch, PrioritizedReplayBuffer, ReplayBuffer, SumTree, beta_schedule
from .config import PRESETS, TrainConfig, preset
from .envs import ensure_registered, make_env, make_vector_env
from .evaluate import EvalResult, evaluate_checkpoint, run_episodes
from .history import ActingHistory
from .networks import Actor, Critic, NetworkConfig, TwinCritic
from .plot import plot_runs
from .train import LSTMTD3Job, TrainResult, train
from .wrappers import POMDPWrapper, parse_pomdp

try:
    __version__ = version("lstm-td3")
except PackageNotFoundError:  # pragma: no cover - source tree without metadata
    __version__ = "0.0.0"

__all__ = [
    "LSTMTD3",
    "PRESETS",
    "ActingHistory",
    "Actor",
    "Batch",
    "Critic",
    "EvalResult",
    "LSTMTD3Job",
    "LoadedAgent",
    "NetworkConfig",
    "POMDPWrapper",
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "SumTree",
    "TD3Config",
    "TrainConfig",
    "TrainResult",
    "TwinCritic",
    "__version__",
    "beta_schedule",
    "ensure_registered",
    "evaluate_checkpoint",
    "load_agent",
    "make_env",
    "make_vector_env",
    "parse_pomdp",
    "plot_runs",
    "preset",
    "run_episodes",
    "train",
]
