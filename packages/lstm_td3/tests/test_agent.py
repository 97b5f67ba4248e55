"""Networks, acting history and the TD3 update rules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lstm_td3 import (
    LSTMTD3,
    ActingHistory,
    Actor,
    NetworkConfig,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    TD3Config,
    TwinCritic,
)
from lstm_td3.agent import stats_dict

SMALL = NetworkConfig((8,), 8, 1, (8,), (8,), (8,))


def _cfg(**kw) -> TD3Config:
    return TD3Config(actor=SMALL, critic=SMALL, **kw)


def _twin(seed: int, **cfg) -> LSTMTD3:
    """An agent built from the global torch seed ``seed`` (initial weights) and generator
    seed ``seed``: two calls give identical agents."""
    torch.manual_seed(seed)
    return LSTMTD3(2, 1, [-2.0], [2.0], _cfg(**cfg), seed=seed)


def _filled(buf_cls=ReplayBuffer, n=60, L=3, seed=0, **kw):
    buf = buf_cls(2, 1, capacity=200, n_envs=1, max_hist_len=L, seed=seed, **kw)
    rng = np.random.default_rng(seed)
    for k in range(n):
        o = rng.normal(size=(1, 2))
        buf.add(o, rng.uniform(-2, 2, (1, 1)), rng.normal(size=1), rng.normal(size=(1, 2)),
                [k % 17 == 16], [k % 11 == 10])
    return buf


def test_acting_history_matches_replay_windows():
    L, n_envs = 3, 2
    hist = ActingHistory(n_envs, 1, 1, L)
    buf = ReplayBuffer(1, 1, capacity=100, n_envs=n_envs, max_hist_len=L)
    windows = []
    for k in range(12):
        obs = np.array([[k], [100 + k]], dtype=np.float32)
        act = -obs
        windows.append((hist.obs.copy(), hist.length.copy()))
        done = np.array([k == 4, k in (2, 7)])
        buf.add(obs, act, [0, 0], obs, [False, False], done)
        hist.push(obs, act)
        hist.reset(done)
    b = buf.gather(np.arange(len(buf)))
    for k, (w, length) in enumerate(windows):
        for e in range(n_envs):
            i = k * n_envs + e
            assert b.hist_len[i] == length[e]
            np.testing.assert_array_equal(b.hist_obs[i], w[e])
    assert hist.obs[1, :, 0].tolist() == [109, 110, 111] and hist.length.tolist() == [3, 3]


def test_networks_read_last_real_step_and_bound_actions():
    torch.manual_seed(0)
    actor = Actor(3, 2, act_limit=torch.tensor([2.0, 0.5]), cfg=SMALL)
    critic = TwinCritic(3, 2, SMALL)
    obs = torch.randn(4, 3)
    ho, ha = torch.randn(4, 5, 3), torch.randn(4, 5, 2)
    ho[0], ha[0] = 0.0, 0.0  # windows are zero past their length, as the buffer builds them
    lengths = torch.tensor([0, 1, 3, 5])
    a = actor(obs, ho, ha, lengths)
    assert a.shape == (4, 2)
    assert torch.all(a[:, 0].abs() <= 2.0) and torch.all(a[:, 1].abs() <= 0.5)
    q1, q2 = critic(obs, a, ho, ha, lengths)
    assert q1.shape == (4,) and not torch.allclose(q1, q2)
    # entries past hist_len (padding) do not change the output
    ho2 = ho.clone()
    ho2[0, 1:] = 99.0  # a zero-length window reads its (zero) first step
    ho2[1, 1:] = 99.0
    ho2[2, 3:] = 99.0
    torch.testing.assert_close(actor(obs, ho2, ha, lengths), a)
    # zero-length history = one zero step
    zero = actor(obs[:1], torch.zeros(1, 1, 3), torch.zeros(1, 1, 2), torch.tensor([0]))
    torch.testing.assert_close(zero, a[:1])


def test_critic_loss_is_clipped_double_q_with_truncation_bootstrap():
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(target_noise=0.0, gamma=0.9), seed=0)
    batch = _filled().sample(32)
    assert batch.done.sum() > 0
    b = agent.to_tensors(batch)
    with torch.no_grad():
        a2 = agent.actor_targ(b.next_obs, b.next_hist_obs, b.next_hist_act, b.next_hist_len)
        q1t, q2t = agent.critic_targ(b.next_obs, a2, b.next_hist_obs, b.next_hist_act,
                                     b.next_hist_len)
        y = b.rew + 0.9 * (1 - b.done) * torch.minimum(q1t, q2t)
        q1, q2 = agent.critic(b.obs, b.act, b.hist_obs, b.hist_act, b.hist_len)
        expected = ((q1 - y) ** 2).mean() + ((q2 - y) ** 2).mean()
        td = torch.maximum((q1 - y).abs(), (q2 - y).abs())
    out = agent.update(batch)
    assert out["q_loss"] == pytest.approx(expected.item(), rel=1e-5)
    np.testing.assert_allclose(out["td_error"], td.numpy(), rtol=1e-5)


def test_target_policy_smoothing_is_clipped():
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(target_noise=10.0, noise_clip=0.05), seed=0)
    b = agent.to_tensors(_filled().sample(64))
    mu = agent.actor_targ(b.next_obs, b.next_hist_obs, b.next_hist_act, b.next_hist_len)
    a2 = agent.target_action(b)
    diff = (a2 - mu).abs()
    # noise_clip is a fraction of the half-range (2 here), as in Fujimoto's TD3 / SB3 / CleanRL
    assert diff.max() <= 0.1 + 1e-6 and diff.max() > 0.08
    assert a2.abs().max() <= 2.0


def test_exploration_noise_is_a_fraction_of_the_half_range():
    # bounds [-50, 150]: half-range 100, centre 50; noise 0.01 -> std 1 in action units
    agent = LSTMTD3(2, 1, [-50.0], [150.0], _cfg(), seed=0)
    obs = np.zeros((20_000, 2), np.float32)
    hist = ActingHistory(20_000, 2, 1, 3)
    noisy = agent.act(obs, hist, noise_scale=0.01) - agent.act(obs, hist)
    assert np.std(noisy) == pytest.approx(1.0, rel=0.03)


def test_default_networks_are_the_original_command_line_defaults():
    cfg = NetworkConfig()
    assert (cfg.mem_pre_lstm, cfg.lstm_hidden, cfg.mem_after_lstm) == ((128,), 128, ())
    assert cfg.cur_feature == (128, 128) and cfg.post_comb == (128,) and cfg.hist_with_past_act
    actor = Actor(3, 1, cfg=cfg)
    assert actor.memory.lstm.input_size == 128 and actor.memory.pre[0].in_features == 4
    assert actor.memory.out_dim == 128 and actor.post[0].in_features == 256
    # the original's main() never passes critic_hist_with_past_act: its critics see no actions
    agent_cfg = TD3Config()
    assert agent_cfg.actor.hist_with_past_act and not agent_cfg.critic.hist_with_past_act
    assert agent_cfg.critic == replace(cfg, hist_with_past_act=False)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_delayed_policy_and_polyak_targets():
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(policy_delay=3, polyak=0.9), seed=0)
    buf = _filled()
    actor0, targ0 = _params(agent.actor), _params(agent.critic_targ)
    outs = [agent.update(buf.sample(16)) for _ in range(2)]
    assert all(o["pi_loss"] is None for o in outs)
    assert all(torch.equal(a, b) for a, b in zip(actor0, _params(agent.actor), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(targ0, _params(agent.critic_targ),
                                                 strict=True))
    critic_before = _params(agent.critic)
    out = agent.update(buf.sample(16))
    assert out["pi_loss"] is not None
    assert not all(torch.equal(a, b) for a, b in zip(actor0, _params(agent.actor), strict=True))
    # Polyak: targ = 0.9 targ + 0.1 critic (critic already stepped in this update)
    for t0, c, t1 in zip(targ0, _params(agent.critic), _params(agent.critic_targ), strict=True):
        torch.testing.assert_close(t1, 0.9 * t0 + 0.1 * c)
    # the actor step must not move the critics beyond their own step
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, _params(agent.critic),
                                                      strict=True))


def test_per_weights_enter_the_loss_and_priorities_update():
    buf = _filled(PrioritizedReplayBuffer, alpha=1.0)
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(target_noise=0.0), seed=0)
    batch = buf.sample(16, beta=1.0)
    zero_w = batch._replace(weights=np.zeros_like(batch.weights))
    assert agent.update(zero_w)["q_loss"] == 0.0
    out = agent.update(batch)
    buf.update_priorities(batch.indices, out["td_error"])
    np.testing.assert_allclose(buf.tree.get(batch.indices), np.abs(out["td_error"]) + 1e-6,
                               rtol=1e-6)


def test_hist_zero_has_no_memory_branch_and_folds_old_checkpoints():
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(max_hist_len=0), seed=0)
    assert agent.actor.memory is None and agent.critic.q1.memory is None
    # an earlier-layout hist-0 network (memory branch fed one zero step) loads with its constant
    # memory output folded into the integration bias: the same function
    torch.manual_seed(3)
    old_actor = Actor(2, 1, torch.tensor([2.0]), torch.tensor([0.0]), SMALL, use_memory=True)
    old_critic = TwinCritic(2, 1, SMALL, use_memory=True)
    agent.actor.load_state_dict(old_actor.state_dict())
    agent.critic.load_state_dict(old_critic.state_dict())
    obs, act = torch.randn(7, 2), torch.rand(7, 1) * 4 - 2
    zeros = torch.zeros(7, 1, 2), torch.zeros(7, 1, 1), torch.zeros(7, dtype=torch.long)
    torch.testing.assert_close(agent.actor(obs, *zeros), old_actor(obs, *zeros))
    for new, old in zip(agent.critic(obs, act, *zeros), old_critic(obs, act, *zeros),
                        strict=True):
        torch.testing.assert_close(new, old)


def test_plain_td3_same_code_and_acting():
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(max_hist_len=0), seed=0)
    buf = _filled(L=0)
    for _ in range(3):
        agent.update(buf.sample(8))
    hist = ActingHistory(3, 2, 1, 0)
    a = agent.act(np.zeros((3, 2)), hist, noise_scale=0.5)
    assert a.shape == (3, 1) and np.all(np.abs(a) <= 2.0)
    r = agent.random_action(1000)
    assert r.min() >= -2 and r.max() <= 2 and abs(r.mean()) < 0.2


def test_bad_config():
    with pytest.raises(ValueError):
        TD3Config(policy_delay=0)
    with pytest.raises(ValueError):
        TD3Config(polyak=1.0)
    with pytest.raises(ValueError):
        NetworkConfig(lstm_hidden=0)
    with pytest.raises(ValueError, match="bounds"):
        LSTMTD3(2, 1, [1.0], [-1.0])


def test_update_without_host_transfer_gives_the_same_values():
    buf = _filled(PrioritizedReplayBuffer)
    a, b = _twin(4), _twin(4)
    for _ in range(4):
        batch = buf.sample(16, 0.5)
        host = a.update(batch)
        dev = b.update(batch, to_host=False)
        assert isinstance(dev["stats"], torch.Tensor) and isinstance(dev["td_error"], torch.Tensor)
        assert stats_dict(dev["stats"].tolist()) == {k: v for k, v in host.items()
                                                     if k != "td_error"}
        np.testing.assert_array_equal(dev["td_error"].numpy(), host["td_error"])
        buf.update_priorities(batch.indices, dev["td_error"])  # tensors are accepted


def test_cuda_graph_config_checks():
    with pytest.raises(ValueError, match="cannot be combined"):
        TD3Config(cuda_graph=True, compile=True)
    # without CUDA the flag is ignored: plain eager updates
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(cuda_graph=True), seed=0)
    assert agent.use_graph is (agent.device.type == "cuda")


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@CUDA
def test_cuda_graph_update_matches_eager():
    buf = _filled(L=3)
    torch.manual_seed(5)  # the same initial weights, the same noise generators
    eager = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(), device="cuda", seed=5)
    torch.manual_seed(5)
    graph = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(cuda_graph=True, graph_warmup=2),
                    device="cuda", seed=5)
    assert graph.use_graph and graph.q_opt.param_groups[0]["capturable"]
    for k in range(9):  # 2 eager warm-up updates, then both graphs captured and replayed
        batch = buf.sample(16)
        e, g = eager.update(batch), graph.update(batch)
        for key in ("q_loss", "q1", "q2"):
            assert g[key] == pytest.approx(e[key], rel=1e-4, abs=1e-6), (k, key)
        assert (g["pi_loss"] is None) == (e["pi_loss"] is None)
        np.testing.assert_allclose(g["td_error"], e["td_error"], rtol=1e-4, atol=1e-5)
    assert set(graph._graphs) == {False, True}
    for name, m in eager.modules().items():
        for (k, p), q in zip(m.state_dict().items(), graph.modules()[name].state_dict().values(),
                             strict=True):
            torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=f"{name}.{k}")


@pytest.mark.gpu
@CUDA
def test_cuda_device_replay_and_graph_training_smoke(tmp_path):
    from lstm_td3.config import TrainConfig
    from lstm_td3.train import train

    buf = _filled(L=3)
    buf.attach_device("cuda")
    flat = np.arange(len(buf))
    for name, a, b in zip(type(buf.gather(flat))._fields, buf.gather(flat),
                          buf.gather_device(flat), strict=True):
        np.testing.assert_array_equal(b.cpu().numpy() if hasattr(b, "cpu") else b, a,
                                      err_msg=name)
    cfg = TrainConfig(env_id="Pendulum-v1", pomdp="remove_velocity", total_steps=200,
                      steps_per_epoch=100, start_steps=50, update_after=50, update_every=25,
                      batch_size=32, replay_size=1000, num_test_episodes=1,
                      max_episode_steps=50, device="cuda", use_per=True,
                      per_batch_priorities=True,
                      agent=_cfg(max_hist_len=3, cuda_graph=True))
    result = train(cfg, tmp_path / "r", show_progress=False, tensorboard=False)
    assert result.steps == 200 and result.updates == 150


@pytest.mark.gpu
@CUDA
def test_cuda_update_and_act_match_cpu_shapes():
    agent = LSTMTD3(2, 1, [-2.0], [2.0], _cfg(), device="cuda", seed=0)
    out = agent.update(_filled().sample(16))
    assert np.isfinite(out["q_loss"]) and out["td_error"].shape == (16,)
    a = agent.act(np.zeros((2, 2)), ActingHistory(2, 2, 1, 3), noise_scale=0.1)
    assert a.shape == (2, 1) and np.all(np.abs(a) <= 2.0)


def test_unrolled_lstm_matches_nn_lstm():
    from lstm_td3.networks import unrolled_lstm

    torch.manual_seed(0)
    for layers in (1, 2):
        lstm = torch.nn.LSTM(3, 4, num_layers=layers, batch_first=True)
        x = torch.randn(6, 5, 3, requires_grad=True)
        last = torch.tensor([0, 1, 4, 2, 3, 4])
        ref = lstm(x)[0][torch.arange(6), last]
        out = unrolled_lstm(lstm, x, last)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
        g_ref = torch.autograd.grad(ref.sum(), [x, *lstm.parameters()])
        g_out = torch.autograd.grad(out.sum(), [x, *lstm.parameters()])
        for a, b in zip(g_out, g_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _compare_compiled_with_eager(backend: str) -> None:
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    buf = _filled(L=2)  # two unrolled steps: recurrence covered, graphs small
    eager = _twin(0, max_hist_len=2)
    comp = _twin(0, max_hist_len=2, compile=True)
    comp.compile_backend = backend
    for k in range(2):
        batch = buf.sample(16)
        oe, oc = eager.update(batch), comp.update(batch)
        assert (oe["pi_loss"] is None) == (oc["pi_loss"] is None) == (k == 0)
        for key in ("q_loss", "q1", "q2", "pi_loss"):
            if oe[key] is not None:
                assert oc[key] == pytest.approx(oe[key], rel=1e-5, abs=1e-6), key
        np.testing.assert_allclose(oc["td_error"], oe["td_error"], rtol=1e-5, atol=1e-6)
    for name, module in eager.modules().items():
        mod, other = module.state_dict(), comp.modules()[name].state_dict()
        assert list(mod) == list(other)  # nn.LSTM names: checkpoints compatible
        for key, value in mod.items():
            torch.testing.assert_close(other[key], value, rtol=1e-5, atol=1e-6)
    for name, optimizer in eager.optimizers().items():
        for i, st in optimizer.state_dict()["state"].items():
            got = comp.optimizers()[name].state_dict()["state"][i]
            torch.testing.assert_close(got["exp_avg"], st["exp_avg"], rtol=1e-4, atol=1e-7)
    hist = ActingHistory(2, 2, 1, 2)
    hist.push(np.ones((2, 2)), np.full((2, 1), 0.5))
    obs = np.array([[0.1, -0.2], [0.3, 0.4]])
    np.testing.assert_allclose(comp.act(obs, hist), eager.act(obs, hist), rtol=1e-5, atol=1e-6)
    assert not torch._dynamo.utils.counters["graph_break"]
    assert set(comp._compiled) == {"critic_loss", "actor_loss", "policy"}
    assert not eager._compiled
    assert sum(torch._dynamo.utils.counters["stats"].values()) > 0  # Dynamo did trace


def test_compiled_path_traces_without_graph_breaks():
    """The compiled path's graphs (LSTM unrolled, traced by Dynamo and AOTAutograd, run by the
    ``aot_eager`` backend: no code generation, seconds) give the eager update and actions."""
    _compare_compiled_with_eager("aot_eager")


@pytest.mark.slow
def test_compiled_update_and_acting_match_eager_inductor():
    """Same with inductor, the backend ``compile=True`` uses.  Slow: generating and compiling
    the C++ kernels of the two loss graphs (forward and backward) and the policy takes about a
    minute on 2 cores (less when the inductor disk cache already holds them)."""
    _compare_compiled_with_eager("inductor")
