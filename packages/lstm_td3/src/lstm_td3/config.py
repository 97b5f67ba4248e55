"""Training job configuration and presets (paper defaults; the beam fork's values)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .agent import TD3Config
from .networks import NetworkConfig
from .seeding import MAX_RUN_SEED
from .wrappers.pomdp import parse_pomdp

__all__ = ["BEAM_NOISE_RAD", "PRESETS", "TrainConfig", "preset"]


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as ``config.json`` and in every checkpoint.

    Step counts are *environment* steps summed over all ``n_envs`` envs.  Defaults are the
    paper's (Meng et al. 2021): 10k uniform-random start steps, updates from 1k steps on, every 50
    steps as many gradient steps as env steps (``utd_ratio`` 1), batch 100, replay 1e6, an
    evaluation of 10 deterministic episodes every 4000 steps.
    """

    env_id: str = "Pendulum-v1"
    pomdp: str = ""
    n_envs: int = 1
    vectorization: Literal["sync", "async"] = "sync"
    max_episode_steps: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    total_steps: int = 800_000
    steps_per_epoch: int = 4000
    start_steps: int = 10_000
    update_after: int = 1000
    update_every: int = 50
    utd_ratio: float = 1.0
    batch_size: int = 100
    replay_size: int = 1_000_000
    use_per: bool = False
    per_alpha: float = 0.6
    per_beta0: float = 0.4
    per_eps: float = 1e-6
    num_test_episodes: int = 10
    seed: int = 0
    device: str = "auto"
    torch_threads: int = 1
    save_replay: bool = True
    keep_checkpoints: int = 2
    #: cut the running episodes at every checkpoint (the earlier behaviour); resume is exact
    #: without it (episodes are re-entered from their seeds and actions)
    reset_at_checkpoint: bool = False
    #: on a CUDA device, mirror the replay storage there and gather the history windows on the
    #: device (only the sampled indices and weights cross, pinned and non-blocking)
    device_replay: bool = True
    #: with PER, write the priorities of an update block's batches after the block, from one
    #: device-to-host copy, instead of after every update (which costs a device sync per update
    #: on CUDA); priorities are then up to ``update_every * utd_ratio`` updates late
    per_batch_priorities: bool = False
    preset: str = "paper"
    agent: TD3Config = field(default_factory=TD3Config)

    def __post_init__(self) -> None:
        parse_pomdp(self.pomdp)
        positive = ("n_envs", "total_steps", "steps_per_epoch", "update_every", "batch_size",
                    "replay_size", "num_test_episodes", "keep_checkpoints")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("start_steps", "update_after", "torch_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")
        if self.utd_ratio <= 0:
            raise ValueError(f"utd_ratio must be > 0, got {self.utd_ratio}")
        if not 0.0 <= self.per_alpha <= 1.0 or not 0.0 <= self.per_beta0 <= 1.0:
            raise ValueError("per_alpha and per_beta0 must be in [0, 1]")
        if self.per_eps <= 0:
            raise ValueError(f"per_eps must be > 0, got {self.per_eps}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not (
                0 <= self.seed <= MAX_RUN_SEED):
            raise ValueError(f"seed must be an integer in [0, {MAX_RUN_SEED}], got {self.seed!r}")
        if self.vectorization not in ("sync", "async"):
            raise ValueError(f"vectorization must be sync or async, got {self.vectorization!r}")


#: the fork's beam network (its ``lstm_td3_beam_test.py``): pre-LSTM (128,), LSTM 256, after-LSTM
#: (128,), current features (256, 128), integration (128,), past actions in the history
_BEAM_NET = NetworkConfig(
    mem_pre_lstm=(128,),
    lstm_hidden=256,
    mem_after_lstm=(128,),
    cur_feature=(256, 128),
    post_comb=(128,),
    hist_with_past_act=True,
)

#: The fork's phase increments are bounded at +-pi/4 rad and its noises are absolute, in rad:
#: exploration 0.08, target smoothing 0.03, clip 0.1.  PSBPhaseCorrection-v0 takes a in [-1, 1]
#: and applies a * pi/4 rad (half-range 1 in action units = pi/4 rad), and our noises are
#: fractions of the half-range, so the fork's values become x / (pi/4).
_FORK_HALF_RANGE_RAD = math.pi / 4
BEAM_NOISE_RAD = {"act_noise": 0.08, "target_noise": 0.03, "noise_clip": 0.1}

#: Named starting points.  ``beam``: the extended fork's settings for the PSB phase-correction
#: task (``beamenv/PSBPhaseCorrection-v0``, the fork's task), noises converted as above.
PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(),
    "beam": TrainConfig(
        env_id="beamenv/PSBPhaseCorrection-v0",
        n_envs=8,
        total_steps=600_000,
        steps_per_epoch=3000,
        start_steps=20_000,
        update_after=10_000,
        update_every=15,
        batch_size=256,
        replay_size=1_000_000,
        use_per=True,
        num_test_episodes=4,
        preset="beam",
        agent=TD3Config(
            gamma=0.98,
            pi_lr=1e-4,
            q_lr=2e-4,
            **{k: v / _FORK_HALF_RANGE_RAD for k, v in BEAM_NOISE_RAD.items()},
            policy_delay=3,
            max_hist_len=5,
            actor=_BEAM_NET,
            critic=_BEAM_NET,
        ),
    ),
}


def preset(name: str) -> TrainConfig:
    """A fresh copy of preset ``name`` (``paper`` or ``beam``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
