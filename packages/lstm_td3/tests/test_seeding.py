"""Seed streams: disjoint across streams, runs, envs and episodes (lstm_td3.seeding)."""

from __future__ import annotations

import itertools

import pytest

from lstm_td3.seeding import MAX_RUN_SEED, STREAMS, stream_seed


def test_streams_runs_envs_and_episodes_never_share_a_seed():
    seen: dict[int, tuple] = {}
    for key in itertools.product(STREAMS, range(4), range(9), range(6)):
        seed = stream_seed(*key)
        assert seed not in seen, (key, seen.get(seed))
        seen[seed] = key
    # the old rule's collisions: env seeds of run s+1 were those of run s shifted by one, and
    # evaluation (seed + i) overlapped training ranges; now they are disjoint at the extremes
    assert stream_seed("train_env", 0, 1) != stream_seed("train_env", 1, 0)
    top = stream_seed("train_env", MAX_RUN_SEED, 2**16 - 1, 2**32 - 1)
    assert top < stream_seed("test", 0, 0, 0) < stream_seed("eval", 0, 0, 0)


def test_bad_stream_inputs():
    with pytest.raises(ValueError, match="unknown seed stream"):
        stream_seed("nope", 0)
    with pytest.raises(ValueError, match="run seed"):
        stream_seed("eval", MAX_RUN_SEED + 1)
    with pytest.raises(ValueError, match="index"):
        stream_seed("eval", 0, -1)
