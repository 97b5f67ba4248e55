"""``lstm-td3`` with hist 0 built the earlier way, for comparing learning before and after the
hist-0 speed change: the networks keep a memory branch that reads one zero step (the layout
before 2026-12-01, when ``--hist-len 0`` still ran the LSTM on a constant zero window).
Everything else is today's code; the command-line arguments are ``lstm-td3``'s::

    python packages/lstm_td3/experiments/hist0_old_layout.py train --hist-len 0 ...
"""

from __future__ import annotations

import sys

import lstm_td3.agent as agent
from lstm_td3.cli import main
from lstm_td3.networks import Actor, TwinCritic


def _actor(obs_dim, act_dim, act_limit, act_offset, cfg, use_memory) -> Actor:
    return Actor(obs_dim, act_dim, act_limit, act_offset, cfg, use_memory=True)


def _critic(obs_dim, act_dim, cfg, use_memory) -> TwinCritic:
    return TwinCritic(obs_dim, act_dim, cfg, use_memory=True)


if __name__ == "__main__":
    agent.Actor = _actor  # type: ignore[assignment, misc]
    agent.TwinCritic = _critic  # type: ignore[assignment, misc]
    sys.argv[0] = "lstm-td3"
    main()
