"""Training job configuration and presets (paper defaults; the beam fork's values).

Every ``lstm-td3 train`` option is a field here, with its help text and default
(:func:`physml_core.options.opt`); the command line is generated from this dataclass.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from physml_core.options import opt
from physml_core.training import RunConfig

from .agent import TD3Config
from .networks import NetworkConfig
from .wrappers.pomdp import parse_pomdp

__all__ = ["BEAM_NOISE_RAD", "PRESETS", "TrainConfig", "preset"]


@dataclass
class TrainConfig(RunConfig):
    """Everything one training run needs; saved as ``config.json`` and in every checkpoint.

    Step counts are *environment* steps summed over all ``n_envs`` envs.  Defaults are the
    paper's (Meng et al. 2021) and equal the ``paper`` preset: 10k uniform-random start steps,
    updates from 1k steps on, every 50 steps as many gradient steps as env steps
    (``utd_ratio`` 1), batch 100, replay 1e6, an evaluation of 10 deterministic episodes every
    4000 steps.  The shared run fields (run folder, resume, seed, device, time limit,
    checkpoints kept) come from :class:`~physml_core.training.RunConfig`.
    """

    env_id: str = field(default="Pendulum-v1", metadata=opt(
        "Gymnasium id, e.g. Pendulum-v1, HalfCheetahBulletEnv-v0, beamenv/PSBPhaseCycle-v0.",
        flag="--env"))
    pomdp: str | None = field(default=None, metadata=opt(
        "POMDP variant(s), e.g. remove_velocity, flickering, random_noise, "
        "random_sensor_missing, remove_velocity+flickering (default: the full observation)."))
    n_envs: int = field(default=1, metadata=opt("Parallel envs (one vector env).", min=1))
    vectorization: Literal["sync", "async"] = field(default="sync", metadata=opt(
        "Vector env: one process (sync) or one worker process per env (async)."))
    max_episode_steps: int | None = field(default=None, metadata=opt(
        "Time limit of an episode (default: the env's own).", min=1))
    #: keyword arguments for ``gymnasium.make`` (command line: ``--env-kwargs JSON``)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    total_steps: int = field(default=800_000, metadata=opt(
        "Env steps of the whole run, summed over the envs.", min=1))
    steps_per_epoch: int = field(default=4000, metadata=opt(
        "Env steps per epoch; test episodes, a log line and a checkpoint follow each.", min=1))
    start_steps: int = field(default=10_000, metadata=opt(
        "Uniform-random actions for the first this many env steps.", min=0))
    update_after: int = field(default=1000, metadata=opt(
        "No gradient updates before this many env steps.", min=0))
    update_every: int = field(default=50, metadata=opt(
        "Env steps between blocks of gradient updates.", min=1))
    utd_ratio: float = field(default=1.0, metadata=opt(
        "Gradient updates per env step (update-to-data ratio, > 0).", flag="--utd", min=0))
    batch_size: int = field(default=100, metadata=opt(
        "Transitions (with their history windows) per gradient update."))
    replay_size: int = field(default=1_000_000, metadata=opt(
        "Replay capacity in transitions.", min=1))
    use_per: bool = field(default=False, metadata=opt(
        "Prioritized replay (Schaul et al. 2016).", flag="--per/--no-per"))
    per_alpha: float = field(default=0.6, metadata=opt("PER priority exponent.", min=0, max=1))
    per_beta0: float = field(default=0.4, metadata=opt(
        "PER importance-weight exponent at the start (annealed to 1).", min=0, max=1))
    per_eps: float = 1e-6
    num_test_episodes: int = field(default=10, metadata=opt(
        "Deterministic test episodes after every epoch.", flag="--test-episodes", min=1))
    threads: int | None = field(default=None, metadata=opt(""))
    save_replay: bool = field(default=True, metadata=opt(
        "Put the replay buffer into checkpoints (needed to resume)."))
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
    #: end this session after this many env steps, as if interrupted there (schedules still
    #: follow ``total_steps``); the same call without it continues.  None: run to the end.
    stop_at: int | None = None
    agent: TD3Config = field(default_factory=TD3Config)

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_pomdp(self.pomdp)
        positive = ("n_envs", "total_steps", "steps_per_epoch", "update_every", "batch_size",
                    "replay_size", "num_test_episodes")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("start_steps", "update_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_episode_steps", "threads", "stop_at"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.utd_ratio <= 0:
            raise ValueError(f"utd_ratio must be > 0, got {self.utd_ratio}")
        if not 0.0 <= self.per_alpha <= 1.0 or not 0.0 <= self.per_beta0 <= 1.0:
            raise ValueError("per_alpha and per_beta0 must be in [0, 1]")
        if self.per_eps <= 0:
            raise ValueError(f"per_eps must be > 0, got {self.per_eps}")
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

#: Named starting points (``lstm-td3 train --preset NAME``; options given on the command line
#: override them).  ``paper``: the dataclass defaults (a test checks that they agree).
#: ``beam``: the extended fork's settings for the PSB phase-correction task
#: (``beamenv/PSBPhaseCorrection-v0``, the fork's task), noises converted as above.
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
        agent=TD3Config(
            gamma=0.98,
            pi_lr=1e-4,
            q_lr=2e-4,
            act_noise=BEAM_NOISE_RAD["act_noise"] / _FORK_HALF_RANGE_RAD,
            target_noise=BEAM_NOISE_RAD["target_noise"] / _FORK_HALF_RANGE_RAD,
            noise_clip=BEAM_NOISE_RAD["noise_clip"] / _FORK_HALF_RANGE_RAD,
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
