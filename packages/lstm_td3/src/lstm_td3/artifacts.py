"""Trained agents on disk: what a checkpoint holds for the agent, and the one way to load it.

Checkpoints are written by :func:`physml_core.training.fit` for
:class:`~lstm_td3.train.LSTMTD3Job` (package ``lstm_td3``, model ``lstm_td3``, one step = one
env step).  Besides the actor, the twin critics, their targets and both optimizers, the agent
part of a checkpoint's ``extra`` is ``spaces`` (:class:`ActionSpaces`: observation and action
sizes and the action bounds) and ``agent`` (update counter and the agent's generator states,
:func:`learner_state`).  :func:`load_agent` rebuilds the agent from them; training, evaluation
and beamenv's experiments all load through it.  This module sits below ``train`` and
``evaluate`` and imports neither.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from physml_core.device import resolve_device
from physml_core.training import load_trained

from .agent import LSTMTD3
from .config import TrainConfig
from .seeding import stream_seed

__all__ = ["MODEL_NAME", "PACKAGE", "ActionSpaces", "LoadedAgent", "build_agent",
           "learner_state", "load_agent", "restore_learner_state"]

PACKAGE = "lstm_td3"
MODEL_NAME = "lstm_td3"

#: config keys of checkpoints written before the shared training layer -> today's keys
#: (None: dropped); only for loading such checkpoints, which cannot be resumed
_LEGACY_KEYS: dict[str, str | None] = {"torch_threads": "threads", "preset": None}


def _array(value: Any) -> np.ndarray:
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


@dataclass(frozen=True)
class ActionSpaces:
    """Sizes of the flat observation and the box action, and the action bounds
    (``act_low``, ``act_high``: float32, shape ``(act_dim,)``)."""

    obs_dim: int
    act_dim: int
    act_low: np.ndarray
    act_high: np.ndarray

    def to_extra(self) -> dict[str, int | np.ndarray]:
        """The ``spaces`` entry of a checkpoint's ``extra``."""
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "act_low": np.asarray(self.act_low, np.float32),
                "act_high": np.asarray(self.act_high, np.float32)}

    @classmethod
    def from_extra(cls, spaces: Mapping[str, Any]) -> ActionSpaces:
        return cls(int(spaces["obs_dim"]), int(spaces["act_dim"]),
                   _array(spaces["act_low"]).astype(np.float32),
                   _array(spaces["act_high"]).astype(np.float32))


def build_agent(config: TrainConfig, spaces: ActionSpaces, device: torch.device | str,
                seed: int | None = None) -> LSTMTD3:
    """A fresh agent for ``config`` and ``spaces`` (its generators seeded from ``seed``;
    default: the run's ``agent`` seed stream)."""
    return LSTMTD3(spaces.obs_dim, spaces.act_dim, spaces.act_low, spaces.act_high,
                   config.agent, device=device,
                   seed=stream_seed("agent", config.seed) if seed is None else seed)


def learner_state(agent: LSTMTD3) -> dict[str, int | str | torch.Tensor]:
    """What continues the agent's learning exactly besides weights and optimizer states: the
    update counter (it times the delayed policy updates) and its two generators."""
    return {"n_updates": agent.n_updates, "rng": json.dumps(agent.rng.bit_generator.state),
            "gen": agent.gen.get_state()}


def restore_learner_state(agent: LSTMTD3, state: Mapping[str, Any]) -> None:
    """Undo :func:`learner_state` into ``agent``."""
    agent.n_updates = int(state["n_updates"])
    agent.rng.bit_generator.state = json.loads(str(state["rng"]))
    agent.gen.set_state(torch.as_tensor(state["gen"], dtype=torch.uint8).cpu())


class LoadedAgent(NamedTuple):
    """A trained agent and the configuration it was trained with."""

    agent: LSTMTD3
    config: TrainConfig


def _legacy_config(stored: dict[str, Any]) -> dict[str, Any]:
    """A config stored before the shared training layer, with today's key names."""
    data = dict(stored)
    for old, new in _LEGACY_KEYS.items():
        if old in data:
            value = data.pop(old)
            if new is not None and new not in data:
                data[new] = value if value else None  # torch_threads 0 meant torch's choice
    if data.get("pomdp") == "":
        data["pomdp"] = None
    return data


def load_agent(checkpoint: str | Path, device: str = "cpu") -> LoadedAgent:
    """Rebuild the trained agent (weights; no optimizer or replay) and its
    :class:`~lstm_td3.config.TrainConfig` from a checkpoint file or run folder (its newest
    checkpoint).  A checkpoint of another package or model is refused with a one-line
    :class:`~physml_core.errors.CheckpointError`."""
    # checkpoints written before the shared layer have other config keys: _legacy_config
    ckpt, config = load_trained(checkpoint, PACKAGE, TrainConfig, MODEL_NAME,
                                upgrade=_legacy_config)
    spaces = ActionSpaces.from_extra(ckpt.extra["spaces"])
    agent = build_agent(config, spaces, resolve_device(device), seed=config.seed)
    ckpt.restore(model=agent.modules(), rng=False)
    return LoadedAgent(agent, config)
