"""Replay buffer, sum tree and PER: known answers and statistical checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_td3.bench import loop_gather
from lstm_td3.buffers import (
    Batch,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SumTree,
    beta_schedule,
)


def _fill_known(buf: ReplayBuffer, n_steps: int, ends: set[int], terminal: set[int] = frozenset()):
    """Transition k of env e has obs 100*e + k, act -(100*e + k), next_obs obs + 0.5."""
    n = buf.n_envs
    for k in range(n_steps):
        obs = np.array([[100.0 * e + k] for e in range(n)])
        buf.add(obs, -obs, obs[:, 0] * 0.1, obs + 0.5,
                np.array([k in terminal] * n), np.array([k in ends and k not in terminal] * n))


def _window(batch, field, i):
    return getattr(batch, field)[i, :, 0].tolist()


def test_known_windows_across_wraparound_and_episode_ends():
    buf = ReplayBuffer(1, 1, capacity=6, n_envs=1, max_hist_len=3, seed=0)
    _fill_known(buf, 9, ends={3})
    # rows now hold k = 6,7,8,3,4,5; the oldest stored row is 3 (k=3)
    assert buf.ptr == 3 and len(buf) == 6
    k_of_row = [6, 7, 8, 3, 4, 5]
    b = buf.gather(np.arange(6))
    assert b.obs[:, 0].tolist() == k_of_row
    expected = {
        8: ([5, 6, 7], 3, [6, 7, 8], 3),  # window wraps around the end of the storage
        7: ([4, 5, 6], 3, [5, 6, 7], 3),
        6: ([4, 5, 0], 2, [4, 5, 6], 3),  # episode started at k=4
        5: ([4, 0, 0], 1, [4, 5, 0], 2),
        4: ([0, 0, 0], 0, [4, 0, 0], 1),  # first step of an episode: empty history
        3: ([0, 0, 0], 0, [3, 0, 0], 1),  # its predecessors were overwritten
    }
    for row, k in enumerate(k_of_row):
        hist, h, nxt, h2 = expected[k]
        assert _window(b, "hist_obs", row) == hist, k
        assert _window(b, "hist_act", row) == [-x for x in hist], k
        assert b.hist_len[row] == h
        assert _window(b, "next_hist_obs", row) == nxt, k
        assert _window(b, "next_hist_act", row) == [-x for x in nxt], k
        assert b.next_hist_len[row] == h2
    np.testing.assert_allclose(b.next_obs[:, 0], np.array(k_of_row) + 0.5)


def test_envs_are_separate_streams():
    buf = ReplayBuffer(1, 1, capacity=40, n_envs=2, max_hist_len=2, seed=0)
    for k in range(6):
        obs = np.array([[k], [100 + k]], dtype=float)
        # env 1 ends its episode after k=2, env 0 never
        buf.add(obs, obs, [0, 0], obs, [False, False], [False, k == 2])
    b = buf.gather(np.array([2 * 4 + 0, 2 * 4 + 1, 2 * 3 + 1]))  # (row 4, env 0/1), (row 3, env 1)
    assert _window(b, "hist_obs", 0) == [2, 3]
    assert _window(b, "hist_obs", 1) == [103, 0]
    assert b.hist_len.tolist() == [2, 1, 0]
    assert _window(b, "next_hist_obs", 2) == [103, 0]


def test_truncation_is_not_terminal_and_terminal_is():
    buf = ReplayBuffer(1, 1, capacity=10, max_hist_len=2)
    _fill_known(buf, 6, ends={1, 4}, terminal={4})
    b = buf.gather(np.arange(6))
    assert b.done.tolist() == [0, 0, 0, 0, 1, 0]
    assert b.hist_len.tolist() == [0, 1, 0, 1, 2, 0]


def test_vectorised_gather_matches_python_loop():
    rng = np.random.default_rng(3)
    buf = ReplayBuffer(3, 2, capacity=300, n_envs=3, max_hist_len=4, seed=1)
    for _ in range(250):  # wraps around (100 rows)
        o = rng.normal(size=(3, 3))
        buf.add(o, rng.normal(size=(3, 2)), rng.normal(size=3), o, rng.random(3) < 0.05,
                rng.random(3) < 0.1)
    idx = np.arange(len(buf))
    b = buf.gather(idx)
    ref, ref_next = loop_gather(buf, idx)
    np.testing.assert_array_equal(b.hist_obs, ref)
    np.testing.assert_array_equal(b.next_hist_obs, ref_next)


def test_zero_history_is_one_zero_step():
    buf = ReplayBuffer(2, 1, capacity=10, max_hist_len=0)
    for k in range(4):
        buf.add([[k, k]], [[k]], [1.0], [[k, k]], [False])
    b = buf.sample(8)
    assert b.hist_obs.shape == (8, 1, 2) and not b.hist_obs.any()
    assert not b.hist_len.any() and not b.next_hist_len.any()


def test_uniform_sampling_is_uniform_with_unit_weights():
    buf = ReplayBuffer(1, 1, capacity=8, n_envs=2, max_hist_len=1, seed=5)
    for k in range(4):
        buf.add([[k], [k]], [[0], [0]], [0, 0], [[k], [k]], [False, False])
    buf.update_priorities(np.arange(4), np.arange(4) * 100.0)  # must be ignored
    counts = np.zeros(8)
    for _ in range(200):
        b = buf.sample(100)
        assert np.all(b.weights == 1.0)
        counts += np.bincount(b.indices, minlength=8)
    n = counts.sum()
    sigma = np.sqrt(n * (1 / 8) * (7 / 8))
    assert np.all(np.abs(counts - n / 8) < 5 * sigma)


def test_bad_input():
    with pytest.raises(ValueError):
        ReplayBuffer(0, 1, 10)
    with pytest.raises(TypeError):
        ReplayBuffer(1, 1, 10.5)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(1, 1, 10).sample(4)
    with pytest.raises(ValueError):
        PrioritizedReplayBuffer(1, 1, 10, alpha=2.0)


@pytest.mark.parametrize("branching", [2, 3, 32])
def test_sumtree_known_answers_and_proportions(branching):
    tree = SumTree(5, branching)  # capacity not a power of the branching
    tree.update(np.array([0, 1, 2, 3, 4]), np.array([1.0, 2.0, 3.0, 4.0, 0.0]))
    assert tree.total == pytest.approx(10.0)
    # cumulative intervals [0,1) [1,3) [3,6) [6,10)
    found = tree.find(np.array([0.0, 0.999, 1.0, 2.5, 3.0, 5.99, 6.0, 9.999, 10.0]))
    assert found.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3]
    nodes, pri = tree.find(np.array([0.5, 9.999, 10.0]), return_priorities=True)
    assert nodes.tolist() == [0, 3, 3] and pri.tolist() == [1.0, 4.0, 4.0]
    tree.update(np.array([1, 1]), np.array([5.0, 0.5]))  # repeated index: last value wins
    assert tree.get(np.array([1]))[0] == 0.5 and tree.total == pytest.approx(8.5)
    rng = np.random.default_rng(0)
    n = 200_000
    counts = np.bincount(tree.find(rng.random(n) * tree.total), minlength=5)
    p = tree.get(np.arange(5)) / tree.total
    sigma = np.sqrt(n * p * (1 - p)) + 1e-9
    assert np.all(np.abs(counts - n * p) < 5 * sigma)
    assert counts[4] == 0
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(IndexError):
        tree.update(np.array([5]), np.array([1.0]))


def _per(alpha=0.6, **kw):
    buf = PrioritizedReplayBuffer(1, 1, capacity=8, n_envs=1, max_hist_len=2, seed=1,
                                  alpha=alpha, **kw)
    _fill_known(buf, 8, ends=set())
    return buf


def test_per_new_transitions_get_max_priority():
    buf = _per(alpha=0.5)
    assert np.allclose(buf.tree.get(np.arange(8)), 1.0)
    buf.update_priorities(np.array([2]), np.array([8.0]))
    assert buf.max_priority == pytest.approx(8.0 + 1e-6)
    buf.add([[9.0]], [[0.0]], [0.0], [[9.0]], [False])  # overwrites row 0
    assert buf.tree.get(np.array([0]))[0] == pytest.approx((8.0 + 1e-6) ** 0.5)


def test_per_sampling_proportions_and_weights():
    alpha = 0.6
    buf = _per(alpha=alpha)
    td = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.0, 3.0, 1.5])
    buf.update_priorities(np.arange(8), td)
    pri = (td + 1e-6) ** alpha
    p = pri / pri.sum()
    counts = np.zeros(8)
    n_batches, bs = 400, 64
    for _ in range(n_batches):
        b = buf.sample(bs, beta=0.4)
        counts += np.bincount(b.indices, minlength=8)
    n = n_batches * bs
    # stratified sampling has at most the multinomial variance
    sigma = np.sqrt(n * p * (1 - p)) + 1e-9
    assert np.all(np.abs(counts - n * p) < 5 * sigma)
    b = buf.sample(bs, beta=0.7)
    w = (8 * p[b.indices]) ** -0.7
    np.testing.assert_allclose(b.weights, w / w.max(), rtol=1e-5)
    assert b.weights.max() == pytest.approx(1.0)


def test_per_updates_the_sampled_transition_itself():
    buf = _per(alpha=1.0)
    b = buf.sample(4, beta=1.0)
    buf.update_priorities(b.indices, np.full(4, 7.0))
    assert np.allclose(buf.tree.get(b.indices), 7.0 + 1e-6)
    # index 0 has a clamped (empty) history window but its own priority is what changes
    buf.update_priorities(np.array([0]), np.array([3.0]))
    assert buf.tree.get(np.array([0]))[0] == pytest.approx(3.0 + 1e-6)


def test_beta_schedule():
    assert beta_schedule(0.0) == pytest.approx(0.4)
    assert beta_schedule(0.5) == pytest.approx(0.7)
    assert beta_schedule(3.0) == 1.0


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_state_roundtrip_through_a_checkpoint(tmp_path, cls):
    # the way training stores the buffer: its state_dict in a checkpoint's extra (arrays come
    # back as tensors)
    from physml_core.checkpoint import load_checkpoint, save_checkpoint


    a = cls(2, 1, capacity=10, n_envs=2, max_hist_len=3, seed=4)
    rng = np.random.default_rng(0)
    for _ in range(7):
        o = rng.normal(size=(2, 2))
        a.add(o, rng.normal(size=(2, 1)), rng.normal(size=2), o, [False, True], [False, False])
    a.update_priorities(np.arange(4), np.arange(4.0))
    path = save_checkpoint(tmp_path / "ckpt_000000001.pt", package="lstm_td3",
                           model_name="lstm_td3", extra={"replay": a.state_dict()})
    stored = {k: (v.numpy() if isinstance(v, torch.Tensor) else v)
              for k, v in load_checkpoint(path).extra["replay"].items()}
    b = cls(2, 1, capacity=10, n_envs=2, max_hist_len=3, seed=99)
    b.load_state_dict(stored)
    for x, y in zip(a.sample(16, 0.5), b.sample(16, 0.5), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="max_hist_len"):
        cls(2, 1, capacity=10, n_envs=2, max_hist_len=2).load_state_dict(stored)


@pytest.mark.parametrize("L", [0, 3])
def test_device_gather_matches_host_gather(L):
    # the torch index arithmetic of gather_device against the NumPy gather (device "cpu" here;
    # the same code runs on CUDA, see the gpu test in test_agent.py)
    buf = ReplayBuffer(2, 1, capacity=40, n_envs=2, max_hist_len=L, seed=0)
    rng = np.random.default_rng(1)

    def add(k):
        buf.add(rng.normal(size=(2, 2)), rng.normal(size=(2, 1)), rng.normal(size=2),
                rng.normal(size=(2, 2)), [k % 9 == 8, False], [False, k % 5 == 4])

    for k in range(7):
        add(k)
    buf.attach_device("cpu")  # copies what is stored, then mirrors every add
    for k in range(7, 33):  # wraps around (20 rows per env)
        add(k)
    flat = np.arange(len(buf))
    host, dev = buf.gather(flat), buf.gather_device(flat)
    for name, a, b in zip(Batch._fields, host, dev, strict=True):
        np.testing.assert_array_equal(np.asarray(b), a, err_msg=name)
    state = buf.rng.bit_generator.state
    on_device = buf.sample_device(16)
    buf.rng.bit_generator.state = state  # same draws: the same batch
    for name, a, b in zip(Batch._fields, buf.sample(16), on_device, strict=True):
        np.testing.assert_array_equal(np.asarray(b), a, err_msg=name)
    assert isinstance(on_device.obs, torch.Tensor)
