"""Seed streams: disjoint across streams, runs, envs and episodes (lstm_td3.seeding)."""

from __future__ import annotations

import itertools

import pytest

from lstm_td3.seeding import MAX_RUN_SEED, STREAMS, stream_seed


def test_streams_runs_envs_and_episodes_never_share_a_seed():
    seen: dict[int, tuple] = {}
    runs = (0, 1, 2, 3, 2**16 - 1, 2**16, 2**16 + 1, MAX_RUN_SEED)  # both blocks of the rule
    for key in itertools.product(STREAMS, runs, range(9), range(6)):
        seed = stream_seed(*key)
        assert seed not in seen, (key, seen.get(seed))
        seen[seed] = key
    # the old rule's collisions: env seeds of run s+1 were those of run s shifted by one, and
    # evaluation (seed + i) overlapped training ranges; now they are disjoint at the extremes
    assert stream_seed("train_env", 0, 1) != stream_seed("train_env", 1, 0)
    top = stream_seed("train_env", 2**16 - 1, 2**16 - 1, 2**32 - 1)
    assert top < stream_seed("test", 0, 0, 0) < stream_seed("eval", 0, 0, 0)
    # run seeds from 2**16 on (the shared --seed range goes to 2**32 - 1) lie above them all
    assert stream_seed("pomdp", 2**16 - 1, 2**16 - 1, 2**32 - 1) < stream_seed("train_env", 2**16)
    # the first block keeps the rule's first version: earlier runs' seeds are unchanged
    assert stream_seed("eval", 3, 2, 1) == ((2 * 2**16 + 3) * 2**16 + 2) * 2**32 + 1


def test_bad_stream_inputs():
    with pytest.raises(ValueError, match="unknown seed stream"):
        stream_seed("nope", 0)
    with pytest.raises(ValueError, match="run seed"):
        stream_seed("eval", MAX_RUN_SEED + 1)
    with pytest.raises(ValueError, match="index"):
        stream_seed("eval", 0, -1)
