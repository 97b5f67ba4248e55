"""Environment API: registration, check_env, determinism, bad input, failures, rendering."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import beamenv
from beamenv.errors import BeamEnvError

SETTING = (10e3, 0.5, 0.15, 0.6)


def _cycle(tiny: dict, **kw):
    kw.setdefault("n_steps", 4)
    return gym.make(beamenv.CYCLE_ENV_ID, fidelity=tiny, **kw)


def _corr(tiny: dict, **kw):
    kw.setdefault("n_steps", 3)
    return gym.make(beamenv.CORRECTION_ENV_ID, fidelity=tiny, total_voltages_V=(10e3,),
                    ratios=(0.5,), sin_phi_s_levels=(0.0, 0.15), filling_factors=(0.6,),
                    scan_points=4, **kw)


def test_ids_registered_and_import_is_lazy() -> None:
    assert beamenv.CYCLE_ENV_ID in gym.registry
    assert beamenv.CORRECTION_ENV_ID in gym.registry


def test_check_env_cycle(tiny) -> None:
    env = _cycle(tiny, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert info["backend"] in ("cpp", "numpy")
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.std() > 0


def test_check_env_correction(tiny) -> None:
    env = _corr(tiny, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    _obs, info = env.reset(seed=2)
    assert set(info["setting"]) == {"total_voltage_V", "ratio", "sin_phi_s", "filling_factor"}
    assert -math.pi <= info["phase_error_rad"] < math.pi


def _episode(env, seed: int, actions) -> tuple[np.ndarray, list[float]]:
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for a in actions:
        obs, r, term, trunc, _ = env.step(np.array([a], np.float32))
        observations.append(obs)
        rewards.append(r)
        if term or trunc:
            break
    return np.array(observations), rewards


@pytest.mark.parametrize("maker", [_cycle, _corr])
def test_deterministic_under_seed(tiny, maker) -> None:
    env = maker(tiny)
    acts = [0.3, -0.5, 1.0, 0.0]
    o1, r1 = _episode(env, 7, acts)
    o2, r2 = _episode(env, 7, acts)
    env2 = maker(tiny)
    o3, r3 = _episode(env2, 7, acts)
    assert np.array_equal(o1, o2) and r1 == r2
    assert np.array_equal(o1, o3) and r1 == r3
    o4, _ = _episode(env, 8, acts)
    assert not np.array_equal(o1, o4)


def test_cycle_end_is_terminal_not_truncated(tiny) -> None:
    """Extraction ends the task: terminated (progress is in the observation), never truncated."""
    env = _cycle(tiny, intensity=0.0, randomize=False)
    env.reset(seed=0)
    for k in range(4):
        obs, r, term, trunc, info = env.step(np.zeros(1, np.float32))
        assert 0.0 < info["bunching_factor"] <= 1.0
        assert r == pytest.approx(info["bunching_factor"] - 10 * info["lost_fraction_step"]
                                  - 2.0 * info["emittance_growth"])
        assert obs[-6] == pytest.approx((k + 1) / 4)
        assert not trunc and term == (k == 3) and info["cycle_end"] == (k == 3)
    with pytest.raises(BeamEnvError, match="reset"):
        env.step(np.zeros(1, np.float32))


def test_correction_time_limit_is_truncation_without_progress(tiny) -> None:
    """PSBPhaseCorrection: no step counter in the observation, the end is a time limit."""
    env = _corr(tiny, intensity=0.0)
    obs0, _ = env.reset(seed=0, options={"setting": SETTING})
    assert obs0.shape == (64 + 4,)
    for k in range(3):
        obs, _, term, trunc, _ = env.step(np.zeros(1, np.float32))
        assert not term and trunc == (k == 2)
        assert np.array_equal(obs[-4:], obs0[-4:])  # setting only, nothing that counts steps


def test_cycle_randomised_per_episode_and_seeded(tiny) -> None:
    env = _cycle(tiny, n_steps=2, intensity=0.0).unwrapped  # no space-charge matching: quick
    drawn = {tuple(env.reset(seed=s)[1]["episode"].values()) for s in range(6)}
    assert len(drawn) > 1
    e1 = env.reset(seed=3)[1]["episode"]
    assert env.reset(seed=3)[1]["episode"] == e1
    _, info = env.reset(seed=3, options={"episode": {"emittance_eVs": 1.1, "v2_scale": 1.0}})
    assert info["episode"]["emittance_eVs"] == 1.1 and info["episode"]["v2_scale"] == 1.0
    fixed = _cycle(tiny, n_steps=2, randomize=False, intensity=0.0).unwrapped
    assert fixed.reset(seed=0)[1]["episode"] == {"intensity": 0.0, "emittance_eVs": 1.2,
                                                  "v2_scale": 1.0, "v1_scale": 1.0}
    with pytest.raises(BeamEnvError, match="episode"):
        env.reset(seed=0, options={"episode": {"bogus": 1.0}})


@pytest.mark.parametrize("maker", [_cycle, _corr])
def test_profile_noise_changes_observation_not_beam(tiny, maker) -> None:
    kw = {"intensity": 0.0}
    opts = {"setting": SETTING, "phase_offset_rad": 0.5} if maker is _corr else None
    clean, noisy = maker(tiny, **kw), maker(tiny, profile_noise=0.05, **kw)
    o1, _ = clean.reset(seed=4, options=opts)
    o2, _ = noisy.reset(seed=4, options=opts)
    n = 64
    assert not np.array_equal(o1[:n], o2[:n]) and np.array_equal(o1[n:], o2[n:])
    assert np.all(o2[:n] >= 0)
    r1 = clean.step(np.full(1, 0.2, np.float32))[1]
    r2 = noisy.step(np.full(1, 0.2, np.float32))[1]
    assert r1 == r2  # the reward is computed from the beam, not from the measurement


def test_bad_actions_and_clipping(tiny) -> None:
    env = _cycle(tiny).unwrapped
    env.reset(seed=0)
    with pytest.raises(BeamEnvError, match="finite"):
        env.step(np.array([np.nan], np.float32))
    with pytest.raises(BeamEnvError, match="shape"):
        env.step(np.zeros(2, np.float32))
    with pytest.raises(BeamEnvError, match="number"):
        env.step("left")
    _, _, _, _, info = env.step(np.array([3.0]))
    assert info["action_clipped"] is True
    assert info["phi2_rad"] == pytest.approx(0.0, abs=1e-12)  # pi + 1 * pi wrapped to 0


def test_increment_mode_and_phase_mapping(tiny) -> None:
    env = _cycle(tiny, action_mode="increment").unwrapped
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0], np.float32))
    assert info["phi2_rad"] == pytest.approx(math.pi + math.pi / 4)
    absolute = _cycle(tiny).unwrapped
    assert absolute.phase_from_action(absolute.action_from_phase(2.0), 0.0) == pytest.approx(2.0)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_steps": 0}, "n_steps"),
    ({"action_mode": "sideways"}, "action_mode"),
    ({"fidelity": "ultra"}, "unknown fidelity"),
    ({"fidelity": {"n_macroparticles": 10}}, "at least 100"),
    ({"intensity": 1e15}, "intensity"),
    ({"render_mode": "human"}, "render_mode"),
    ({"emittance_eVs": float("nan")}, "emittance"),
    ({"profile_noise": -0.1}, "profile_noise"),
    ({"randomization": {"v1_scales": ()}}, "v1_scales"),
])
def test_bad_constructor_arguments(kwargs, match) -> None:
    with pytest.raises(BeamEnvError, match=match):
        beamenv.envs.cycle.PSBPhaseCycleEnv(**kwargs)


def test_emittance_too_large_is_a_clear_error(tiny) -> None:
    env = _cycle(tiny, emittance_eVs=15.0)
    with pytest.raises(BeamEnvError, match="does not fit the bucket"):
        env.reset(seed=0)


def test_blond_failure_ends_episode_with_penalty(tiny, monkeypatch) -> None:
    env = _cycle(tiny, failure_penalty=3.0).unwrapped
    obs0, _ = env.reset(seed=0)

    def boom(*args, **kwargs):
        raise RuntimeError("ERROR in Beams: all particles lost and eliminated!")

    monkeypatch.setattr(env.simulator, "track", boom)
    obs, reward, term, trunc, info = env.step(np.zeros(1, np.float32))
    assert term and not trunc and reward == -3.0
    assert "all particles lost" in info["blond_error"]
    assert np.array_equal(obs, obs0)


def test_correction_reward_best_near_optimum(tiny) -> None:
    env = _corr(tiny, intensity=0.0).unwrapped
    _, info = env.reset(seed=0, options={"setting": SETTING, "phase_offset_rad": 0.0})
    assert info["phase_error_rad"] == pytest.approx(0.0, abs=1e-9)
    _, r_opt, *_ = env.step(np.zeros(1, np.float32))
    env.reset(seed=0, options={"setting": SETTING, "phase_offset_rad": math.pi - 0.01})
    _, r_far, *_ = env.step(np.zeros(1, np.float32))
    assert r_opt > r_far
    with pytest.raises(BeamEnvError, match="unknown reset options"):
        env.reset(seed=0, options={"bogus": 1})


@pytest.mark.slow
def test_async_vector_env(tiny) -> None:
    n = 2
    vec = gym.vector.AsyncVectorEnv([lambda: _cycle(tiny, n_steps=3)] * n)
    try:
        obs, _ = vec.reset(seed=[0, 1])
        assert obs.shape == (n, 70)
        assert not np.array_equal(obs[0], obs[1])
        for _ in range(3):
            obs, rewards, _term, _trunc, _infos = vec.step(np.zeros((n, 1), np.float32))
            assert np.all(np.isfinite(rewards))
        single = _cycle(tiny, n_steps=3)
        o_single, _ = single.reset(seed=1)
        vec.reset(seed=[0, 1])
        assert np.array_equal(vec.reset(seed=[0, 1])[0][1], o_single)
    finally:
        vec.close()


def test_matching_is_bounded_in_time(tiny, monkeypatch) -> None:
    import time

    from beamenv.errors import MatchingTimeoutError

    def busy(*args, **kwargs) -> None:  # a hang that burns CPU, like BLonD's search loop
        end = time.process_time() + 5.0
        while time.process_time() < end:
            pass

    env = _cycle(tiny, match_timeout_s=0.3, initial_phi2_rad=0.5, randomize=False).unwrapped
    monkeypatch.setattr(env.simulator._blond, "matched_from_distribution_function", busy)
    start = time.process_time()
    # "0.3 s of CPU time" on a free core; on a saturated one the 3 s wall-clock backstop may
    # come first (seen at load 14 on 2 cores): bounded either way
    with pytest.raises(MatchingTimeoutError, match="did not finish within (0.3 s of CPU|3 s)"):
        env.reset(seed=0)
    assert time.process_time() - start < 4.5  # interrupted well before the 5 s loop ends
    # a hang that sleeps is caught by the wall-clock backstop (10 x the limit)
    monkeypatch.setattr(env.simulator._blond, "matched_from_distribution_function",
                        lambda *args, **kwargs: time.sleep(10))
    start = time.perf_counter()
    with pytest.raises(MatchingTimeoutError, match="wall-clock"):
        env.reset(seed=1, options={"initial_phi2_rad": 0.6})
    assert time.perf_counter() - start < 9.5  # interrupted before the 10 s sleep ends


def test_resonator_impedance_option_changes_the_beam(tiny) -> None:
    rewards = {}
    for res in (None, (600.0, 1.5e6, 1.0)):
        env = _cycle(tiny, n_steps=2, resonator=res, space_charge=False).unwrapped
        env.reset(seed=0)
        _, r, _, _, info = env.step(np.zeros(1, np.float32))
        assert "blond_error" not in info and np.isfinite(r)
        rewards[res is None] = env.beam[1]  # energy offsets after one step
    assert not np.allclose(rewards[True], rewards[False])
    with pytest.raises(BeamEnvError, match="resonator"):
        _cycle(tiny, resonator=(600.0, -1.0, 1.0))


def test_cycle_from_program_file(tiny, tmp_path) -> None:
    t = np.linspace(0.0, 0.2, 20)
    path = tmp_path / "ramp.csv"
    path.write_text("time_s,Ek_eV,v1_V,v2_V\n" + "\n".join(
        f"{a},{160e6 + 1e9 * a},9000,4500" for a in t))
    env = _cycle(tiny, program_file=str(path), n_steps=2, randomize=False).unwrapped
    assert env.programs.duration_s == pytest.approx(0.2)
    obs, _ = env.reset(seed=0)
    assert obs[-4] == pytest.approx(0.5)  # V2 / V1 from the file
    _, r, *_ = env.step(np.zeros(1, np.float32))
    assert np.isfinite(r)
    with pytest.raises(BeamEnvError, match="not found"):
        _cycle(tiny, program_file=str(tmp_path / "missing.csv"))
