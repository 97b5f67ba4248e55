"""POMDP wrappers and environment construction."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from lstm_td3.envs import ensure_registered, final_observations, make_env, make_vector_env
from lstm_td3.wrappers import POMDPWrapper, parse_pomdp, velocity_indices

HAS_PYBULLET = importlib.util.find_spec("pybullet_envs_gymnasium") is not None


def _rollout(env, n, seed=0):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(n):
        obs, *_ = env.step(env.action_space.sample())
        out.append(obs)
    return np.array(out)


def test_remove_velocity_pendulum_keeps_cos_sin():
    env = make_env("Pendulum-v1", pomdp="remove_velocity", seed=0)
    assert env.observation_space.shape == (2,)
    obs, _ = env.reset(seed=1)
    full = env.unwrapped._get_obs()
    np.testing.assert_allclose(obs, full[:2], rtol=1e-6)


def test_parse_and_combinations():
    assert parse_pomdp("remove_velocity+flickering") == ("remove_velocity", "flickering")
    assert parse_pomdp("random_noise_and_random_sensor_missing") == (
        "random_noise", "random_sensor_missing")
    assert parse_pomdp("") == () and parse_pomdp(None) == ()
    with pytest.raises(ValueError, match="unknown POMDP"):
        parse_pomdp("remove_position")
    with pytest.raises(ValueError, match="repeated"):
        parse_pomdp("flickering+flickering")
    with pytest.raises(ValueError, match="no index set"):
        velocity_indices("Acrobot-v1")
    env = make_env("Pendulum-v1", pomdp="remove_velocity+random_noise", seed=0)
    assert env.observation_space.shape == (2,)


def _stats(kind, n=3000, **kw):
    env = POMDPWrapper(gym.make("Pendulum-v1"), kind, seed=7, **kw)
    base = env.unwrapped
    env.reset(seed=0)
    obs, full = [], []
    for _ in range(n):
        o, *_ = env.step(env.action_space.sample())
        obs.append(o)
        full.append(base._get_obs())
    return np.array(obs), np.array(full)


def test_flickering_rate():
    obs, _ = _stats("flickering")
    zero_rows = np.mean(np.all(obs == 0, axis=1))
    assert abs(zero_rows - 0.2) < 5 * np.sqrt(0.2 * 0.8 / len(obs))


def test_random_noise_std():
    obs, full = _stats("random_noise")
    diff = obs - full
    assert abs(diff.std() - 0.1) < 0.01 and abs(diff.mean()) < 0.01


def test_sensor_missing_rate():
    obs, full = _stats("random_sensor_missing", missing_prob=0.3)
    missing = (obs == 0) & (full != 0)
    assert abs(missing.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / missing.size)
    kept = ~missing
    np.testing.assert_allclose(obs[kept], full[kept].astype(np.float32))


def test_own_seeded_rng_is_reproducible():
    def run(global_seed):
        np.random.seed(global_seed)  # the global RNG must not matter  # noqa: NPY002
        env = make_env("Pendulum-v1", pomdp="random_noise+flickering", seed=3)
        env.action_space.seed(0)
        return _rollout(env, 20, seed=5), _rollout(env, 20, seed=5)

    (a1, a2), (b1, _) = run(1), run(2)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a1[0], a2[0])  # reset(seed) re-seeds the wrapper too
    assert a1.shape == (21, 3)


def test_bad_probabilities():
    with pytest.raises(ValueError):
        POMDPWrapper(gym.make("Pendulum-v1"), "flickering", flicker_prob=1.5)


def test_unknown_env_and_beam_without_package():
    with pytest.raises(ValueError, match="unknown environment"):
        make_env("NoSuchEnv-v9")
    with pytest.raises(ValueError, match="1-D Box"):
        make_env("CartPole-v1")
    with pytest.raises(ValueError):
        make_vector_env("Pendulum-v1", 0)


def test_vector_env_keeps_true_final_observation():
    venv = make_vector_env("Pendulum-v1", 2, seed=0, max_episode_steps=3)
    ref = gym.make("Pendulum-v1", max_episode_steps=3)
    obs, _ = venv.reset(seed=0)
    ref_obs, _ = ref.reset(seed=0)
    np.testing.assert_allclose(obs[0], ref_obs)
    for t in range(3):
        a = np.full((2, 1), 0.5, dtype=np.float32)
        nxt, _r, term, trunc, info = venv.step(a)
        ref_obs, *_ = ref.step(a[0])
        done = term | trunc
        real = final_observations(nxt, done, info)
        np.testing.assert_allclose(real[0], ref_obs, rtol=1e-6)
        if t == 2:
            assert trunc.all() and not term.any()
            assert not np.allclose(nxt[0], real[0])  # nxt is already the reset observation
    venv.close()


@pytest.mark.skipif(not HAS_PYBULLET, reason="pybullet_envs_gymnasium not installed")
def test_pybullet_remove_velocity_indices():
    ensure_registered("HalfCheetahBulletEnv-v0")
    env = make_env("HalfCheetahBulletEnv-v0", pomdp="remove_velocity", seed=0)
    base = make_env("HalfCheetahBulletEnv-v0")
    assert env.observation_space.shape[0] == base.observation_space.shape[0] - 3
    obs, _ = env.reset(seed=0)
    full, _ = base.reset(seed=0)
    np.testing.assert_allclose(obs, np.delete(full, [3, 4, 5]), atol=1e-6)
    env.close()
    base.close()
