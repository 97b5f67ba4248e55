"""Integration: LSTM-TD3 trains a few hundred steps on a beamenv environment via Gymnasium ids."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

BEAM_IDS = ("beamenv/PSBPhaseCorrection-v0", "beamenv/PSBPhaseCycle-v0")


def _beam_id() -> str:
    if importlib.util.find_spec("beamenv") is None:
        pytest.skip("beamenv is not installed (pip install 'lstm-td3[beam]')")
    import gymnasium as gym

    import beamenv  # noqa: F401  (registers the ids)

    for env_id in BEAM_IDS:
        if env_id in gym.registry:
            return env_id
    pytest.skip(f"beamenv is importable but registers none of {BEAM_IDS} yet")


@pytest.mark.slow
def test_lstm_td3_trains_on_beamenv(tmp_path):
    env_id = _beam_id()
    from lstm_td3.agent import TD3Config
    from lstm_td3.config import preset
    from lstm_td3.history import ActingHistory
    from lstm_td3.networks import NetworkConfig
    from lstm_td3.train import load_agent, train
    from physml_core.logging import read_metrics

    tiny = NetworkConfig((16,), 16, 1, (16,), (16,), (16,), hist_with_past_act=True)
    cfg = preset("beam")
    cfg.env_id = env_id
    cfg.n_envs = 1
    cfg.total_steps = 40  # a BLonD step costs a fraction of a second: keep it short
    cfg.steps_per_epoch = 40
    cfg.start_steps = 20
    cfg.update_after = 20  # updates every 15 steps (preset): 10 updates at step 30
    cfg.batch_size = 16
    cfg.replay_size = 1000
    cfg.num_test_episodes = 1
    cfg.device = "cpu"
    # beamenv's documented fidelity overrides: a cheap simulation for a smoke test
    cfg.env_kwargs = {"fidelity": {"preset": "fast", "turns_per_step": 20,
                                   "n_macroparticles": 1000}}
    cfg.agent = TD3Config(**{**cfg.agent.__dict__, "actor": tiny, "critic": tiny})
    result = train(cfg, tmp_path / "beam", show_progress=False, tensorboard=False)
    assert result.steps == 40 and result.updates == 10
    records = [r for r in read_metrics(tmp_path / "beam" / "metrics.jsonl")
               if "val/return_mean" in r]
    assert records and np.isfinite(records[-1]["val/return_mean"])
    assert np.isfinite(records[-1]["train/q_loss"])
    agent, stored = load_agent(tmp_path / "beam")
    assert stored.env_id == env_id and stored.agent.actor.hist_with_past_act
    hist = ActingHistory(1, agent.obs_dim, agent.act_dim, stored.agent.max_hist_len)
    act = agent.act(np.zeros((1, agent.obs_dim)), hist)
    assert np.all(act >= agent.act_low_np) and np.all(act <= agent.act_high_np)
