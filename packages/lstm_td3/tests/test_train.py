"""End-to-end: training smoke runs, exact resume, evaluation, plotting and the CLI."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lstm_td3.agent import TD3Config
from lstm_td3.cli import build_config, cli
from lstm_td3.config import PRESETS, TrainConfig, preset
from lstm_td3.evaluate import evaluate_checkpoint
from lstm_td3.networks import NetworkConfig
from lstm_td3.train import load_agent, train
from physml_core.checkpoint import latest, load_checkpoint, save_checkpoint
from physml_core.errors import CheckpointError
from physml_core.logging import read_metrics

TINY = NetworkConfig((16,), 16, 1, (16,), (16,), (16,))


def _cfg(**kw) -> TrainConfig:
    base = dict(env_id="Pendulum-v1", pomdp="remove_velocity", total_steps=300,
                steps_per_epoch=150, start_steps=100, update_after=50, update_every=25,
                batch_size=32, replay_size=2000, num_test_episodes=2, max_episode_steps=50,
                device="cpu", agent=TD3Config(max_hist_len=3, actor=TINY, critic=TINY))
    base.update(kw)
    return TrainConfig(**base)


def test_training_smoke_writes_logs_and_checkpoints(tmp_path):
    result = train(_cfg(), tmp_path / "run", show_progress=False)
    assert result.steps == 300 and result.updates == 250
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    tests = [r for r in records if "val/return_mean" in r]
    assert [r["step"] for r in tests] == [150, 300]
    for key in ("train/q_loss", "train/pi_loss", "train/q1_mean", "train/env_steps_per_s"):
        assert np.isfinite(tests[-1][key])
    assert any("train/episode_return" in r for r in records)
    assert (tmp_path / "run" / "config.json").is_file()
    assert any((tmp_path / "run" / "tensorboard").iterdir())
    ckpt = load_checkpoint(latest(tmp_path / "run"), package="lstm_td3")
    assert ckpt.step == 300 and "replay" in ckpt.extra and ckpt.step_unit == "env_step"
    agent, cfg = load_agent(tmp_path / "run")
    assert cfg.agent.max_hist_len == 3 and agent.obs_dim == 2
    ev = evaluate_checkpoint(tmp_path / "run", episodes=2, seed=1)
    assert ev.returns.shape == (2,) and np.all(ev.lengths == 50)


def test_vector_envs_per_and_plain_td3(tmp_path):
    cfg = _cfg(n_envs=3, use_per=True, total_steps=150, steps_per_epoch=150,
               agent=TD3Config(max_hist_len=0, actor=TINY, critic=TINY))
    result = train(cfg, tmp_path / "per", show_progress=False, tensorboard=False)
    assert result.steps == 150 and result.updates == 100
    ckpt = load_checkpoint(latest(tmp_path / "per"))
    assert ckpt.extra["replay"]["kind"] == "PrioritizedReplayBuffer"


@pytest.mark.slow
def test_async_vector_env(tmp_path):
    cfg = _cfg(n_envs=2, vectorization="async", total_steps=100, steps_per_epoch=100)
    assert train(cfg, tmp_path / "a", show_progress=False, tensorboard=False).steps == 100


def _weights(run_dir):
    ckpt = load_checkpoint(latest(run_dir))
    return ckpt.state["model"], ckpt.extra["replay"]


def test_resume_is_exact_without_cutting_episodes(tmp_path):
    # 70-step episodes run across the checkpoints at 150 and 300; nothing cuts them there
    cfg = _cfg(total_steps=360, steps_per_epoch=150, max_episode_steps=70, use_per=True)
    train(cfg, tmp_path / "full", show_progress=False, tensorboard=False)
    train(cfg, tmp_path / "half", show_progress=False, tensorboard=False, stop_at=150)
    train(cfg, tmp_path / "half", show_progress=False, tensorboard=False, stop_at=300)
    train(cfg, tmp_path / "half", show_progress=False, tensorboard=False)
    (m1, r1), (m2, r2) = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    for net in m1:
        for key in m1[net]:
            assert torch.equal(m1[net][key], m2[net][key]), (net, key)
    for key in ("obs", "act", "rew", "next_obs", "done", "priorities", "ep_step"):
        assert torch.equal(torch.as_tensor(r1[key]), torch.as_tensor(r2[key])), key
    for run in ("full", "half"):
        # one line per epoch: the mean length of the episodes that ended in it, and the count
        records = [r for r in read_metrics(tmp_path / run / "metrics.jsonl")
                   if "train/episode_length" in r]
        lengths = [r["train/episode_length"] for r in records]
        assert lengths == [70] * len(lengths) and len(lengths) >= 2, (run, lengths)
        assert records[-1]["train/episodes"] == 5  # 360 steps: 5 whole episodes, none cut
    # the running episode is in the checkpoint: step 300 is 20 steps into episode 4
    running = load_checkpoint(latest(tmp_path / "half")).extra["running"]
    assert int(running["episode"][0]) == 5 and int(running["ep_len"][0]) == 10


def test_training_envs_follow_the_seed_streams():
    import gymnasium as gym

    from lstm_td3.envs import make_vector_env
    from lstm_td3.seeding import stream_seed

    venv = make_vector_env("Pendulum-v1", 2, max_episode_steps=3,
                           episode_seeds=("train_env", 7))
    ref = gym.make("Pendulum-v1", max_episode_steps=3)
    obs, _ = venv.reset()
    for i in range(2):
        np.testing.assert_array_equal(obs[i], ref.reset(seed=stream_seed("train_env", 7, i))[0])
    for _ in range(3):  # the autoreset starts episode 1 of each env from its own seed
        obs, *_ = venv.step(np.zeros((2, 1), np.float32))
    for i in range(2):
        np.testing.assert_array_equal(
            obs[i], ref.reset(seed=stream_seed("train_env", 7, i, 1))[0])
    venv.close()


def test_resume_from_a_checkpoint_without_episode_state_warns_and_starts_anew(tmp_path):
    from lstm_td3.train import ResumeNotExactWarning

    cfg = _cfg(total_steps=200, steps_per_epoch=100)
    train(cfg, tmp_path / "r", show_progress=False, tensorboard=False, stop_at=100)
    path = latest(tmp_path / "r")
    ckpt = torch.load(path, weights_only=True)
    del ckpt["extra"]["running"]  # as written before episodes were seeded
    torch.save(ckpt, path)
    with pytest.warns(ResumeNotExactWarning):
        result = train(cfg, tmp_path / "r", show_progress=False, tensorboard=False)
    assert result.steps == 200


def test_resume_is_exact(tmp_path):
    cfg = _cfg(total_steps=300, use_per=True)
    train(cfg, tmp_path / "full", show_progress=False, tensorboard=False)
    stopped = train(cfg, tmp_path / "half", show_progress=False, tensorboard=False, stop_at=150)
    assert not stopped.completed and stopped.step == 150
    train(cfg, tmp_path / "half", show_progress=False, tensorboard=False)  # resumes at 150
    (m1, r1), (m2, r2) = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    for net in m1:
        for key in m1[net]:
            assert torch.equal(m1[net][key], m2[net][key]), (net, key)
    for key in ("obs", "act", "priorities", "ep_step"):
        assert torch.equal(torch.as_tensor(r1[key]), torch.as_tensor(r2[key])), key
    steps = [r["step"] for r in read_metrics(tmp_path / "half" / "metrics.jsonl")
             if "val/return_mean" in r]
    assert steps == [150, 300]


def test_resume_inside_an_epoch_is_exact(tmp_path):
    # a stop inside an epoch (as the time limit does): the checkpoint keeps the epoch's first
    # step in its name and the state reached; the resumed run ends that epoch, exactly
    cfg = _cfg(total_steps=300, max_episode_steps=70)
    train(cfg, tmp_path / "full", show_progress=False, tensorboard=False)
    stopped = train(cfg, tmp_path / "half", show_progress=False, tensorboard=False, stop_at=200)
    assert not stopped.completed and stopped.step == 150
    ckpt = load_checkpoint(latest(tmp_path / "half"))
    assert ckpt.step == 150 and int(ckpt.extra["counters"]["step"]) == 200
    done = train(cfg, tmp_path / "half", show_progress=False, tensorboard=False)
    assert done.completed and done.steps == 300
    (m1, r1), (m2, r2) = _weights(tmp_path / "full"), _weights(tmp_path / "half")
    for net in m1:
        for key in m1[net]:
            assert torch.equal(m1[net][key], m2[net][key]), (net, key)
    assert torch.equal(torch.as_tensor(r1["obs"]), torch.as_tensor(r2["obs"]))


def test_resume_refuses_another_configuration(tmp_path):
    cfg = _cfg(total_steps=150)
    train(cfg, tmp_path / "r", show_progress=False, tensorboard=False)
    # total steps and threads may change between sessions of one run
    more = train(replace(cfg, total_steps=300, threads=1), tmp_path / "r",
                 show_progress=False, tensorboard=False)
    assert more.steps == 300
    with pytest.raises(CheckpointError, match="batch_size") as info:
        train(replace(cfg, batch_size=16, total_steps=450), tmp_path / "r",
              show_progress=False, tensorboard=False)
    assert "\n" not in str(info.value) and "--no-resume" in str(info.value)


def test_wrong_checkpoint_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt_000000001.pt", package="calo", model_name="vae",
                           config={})
    with pytest.raises(CheckpointError, match="calo"):
        load_agent(path)


def test_presets_and_config_building():
    beam = preset("beam")
    assert beam.agent.gamma == 0.98 and beam.batch_size == 256 and beam.use_per
    assert beam.agent.actor.hist_with_past_act and beam.agent.critic.lstm_hidden == 256
    # the fork's network (lstm_td3_beam_test.py) and its task
    assert beam.agent.actor == NetworkConfig((128,), 256, 1, (128,), (256, 128), (128,), True)
    assert beam.env_id == "beamenv/PSBPhaseCorrection-v0"
    # the fork's noises, 0.08 / 0.03 / 0.1 rad for increments bounded at +-pi/4 rad, as
    # fractions of the half-range of PSBPhaseCorrection-v0's action (a in [-1, 1] -> a * pi/4)
    quarter = np.pi / 4
    assert beam.agent.act_noise * quarter == pytest.approx(0.08)
    assert beam.agent.target_noise * quarter == pytest.approx(0.03)
    assert beam.agent.noise_clip * quarter == pytest.approx(0.1)
    # the original's command-line network defaults: no after-LSTM layer, current features
    # (128, 128), past actions in the history
    paper = preset("paper").agent.actor
    assert paper == NetworkConfig((128,), 128, 1, (), (128, 128), (128,), True)
    assert not preset("paper").reset_at_checkpoint
    assert preset("paper").agent.max_hist_len == 5 and not preset("paper").use_per
    cfg = build_config({"env_id": "Pendulum-v1", "max_hist_len": 0, "use_per": True,
                        "gamma": 0.9}, past_act=True, hidden=8)
    assert cfg.agent.max_hist_len == 0 and cfg.use_per and cfg.agent.gamma == 0.9
    assert cfg.agent.actor.lstm_hidden == 8 and cfg.agent.critic.hist_with_past_act
    assert not cfg.agent.compile
    assert build_config({"compile": True}).agent.compile
    # options not given keep the preset's values
    beam = build_config({"total_steps": 100}, preset_name="beam")
    assert beam.total_steps == 100 and beam.batch_size == 256 and beam.agent.gamma == 0.98
    with pytest.raises(ValueError):
        preset("nope")
    with pytest.raises(ValueError, match="threads"):
        TrainConfig(threads=0)
    with pytest.raises(ValueError):
        TrainConfig(pomdp="blur")


def test_cli_train_evaluate_plot(tmp_path, monkeypatch):
    runner = CliRunner()
    run = tmp_path / "runs" / "seed0"
    args = ["train", "--env", "Pendulum-v1", "--pomdp", "remove_velocity", "--hist-len", "2",
            "--total-steps", "120", "--steps-per-epoch", "60", "--start-steps", "50",
            "--update-after", "40", "--update-every", "20", "--batch-size", "16",
            "--hidden", "8", "--test-episodes", "1", "--max-episode-steps", "30",
            "--env-kwargs", '{"g": 9.81}',
            "--device", "cpu", "--run-dir", str(run)]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["steps"] == 120
    assert json.loads((run / "config.json").read_text())["env_kwargs"] == {"g": 9.81}
    shutil.copytree(run, tmp_path / "runs" / "seed1")
    res = runner.invoke(cli, ["evaluate", "--checkpoint", str(run), "--episodes", "2",
                              "-o", str(tmp_path / "eval.json")])
    assert res.exit_code == 0, res.output
    plain = json.loads((tmp_path / "eval.json").read_text())
    assert plain["episodes"] == 2
    # offscreen rendering (rgb_array, no display): same seeds, so the same returns
    gif, npz = tmp_path / "eval.gif", tmp_path / "eval.npz"
    for video in (gif, npz):
        res = runner.invoke(cli, ["evaluate", "--checkpoint", str(run), "--episodes", "2",
                                  "--video", str(video)])
        assert res.exit_code == 0, res.output
        report = json.loads(res.output)
        assert report["video"] == str(video)
        np.testing.assert_allclose(report["returns"], plain["returns"], rtol=1e-6)
    assert gif.read_bytes()[:6] == b"GIF89a"
    frames = np.load(npz)["frames"]
    # one frame after each reset and one per step, for both 30-step episodes
    assert frames.shape[0] == sum(plain["lengths"]) + 2 and frames.shape[-1] == 3
    assert frames.dtype == np.uint8 and frames.std() > 0
    # on-screen rendering (render_mode='human', pygame) on SDL's dummy video driver: no window is
    # opened, the same code path runs, and the returns equal the unrendered ones
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    res = runner.invoke(cli, ["evaluate", "--checkpoint", str(run), "--episodes", "1",
                              "--render"])
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(json.loads(res.output)["returns"], plain["returns"][:1],
                               rtol=1e-6)
    res = runner.invoke(cli, ["evaluate", "--checkpoint", str(run), "--video", "x.mp4"])
    assert res.exit_code == 2 and "video must end in" in res.stderr
    png = tmp_path / "curves.png"
    res = runner.invoke(cli, ["plot", str(tmp_path / "runs"), "-o", str(png), "--label", "L2"])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert json.loads(res.output)["groups"]["L2"]["runs"] == 2


def test_paper_preset_is_the_dataclass_defaults_and_the_cli_shows_them():
    # the command line's shown defaults come from the dataclass; they are the paper preset's
    assert PRESETS["paper"] == TrainConfig()
    command = cli.commands["train"]
    shown = {p.name: p.default for p in command.params if isinstance(p, click.Option)}
    defaults = TrainConfig()
    assert shown["total_steps"] == defaults.total_steps == 800_000
    assert shown["gamma"] == defaults.agent.gamma and shown["max_hist_len"] == 5
    assert shown["seed"] == 0 and shown["device"] == "auto" and shown["threads"] is None


def test_cli_resumes_only_the_same_configuration(tmp_path):
    runner = CliRunner()
    args = ["train", "--pomdp", "remove_velocity", "--hist-len", "2", "--total-steps", "60",
            "--steps-per-epoch", "60", "--start-steps", "30", "--update-after", "30",
            "--batch-size", "16", "--hidden", "8", "--test-episodes", "1",
            "--max-episode-steps", "30", "--device", "cpu", "--no-tensorboard",
            "--run-dir", str(tmp_path / "r")]
    assert runner.invoke(cli, args).exit_code == 0
    res = runner.invoke(cli, [*args, "--total-steps", "120"])  # a longer run: resumes
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["steps"] == 120
    res = runner.invoke(cli, [*args, "--gamma", "0.9"])
    assert res.exit_code == 2 and "agent" in res.stderr and len(res.stderr.splitlines()) == 1
    res = runner.invoke(cli, [*args, "--gamma", "0.9", "--no-resume"])
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "r").glob("replaced-*/checkpoints/ckpt_*.pt"))


@pytest.mark.parametrize("args, message", [
    (["train", "--pomdp", "blur", "--total-steps", "10"], "unknown POMDP"),
    (["train", "--device", "cuda:7", "--total-steps", "10"], "device"),
    (["train", "--n-envs", "0"], "n-envs"),
    (["evaluate", "--checkpoint", "."], "no checkpoint"),
    (["train", "--env-kwargs", "{g: 1}"], "env-kwargs"),
])
def test_cli_bad_input_is_one_line_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, [*args, *(["--run-dir", "r"] if args[0] == "train" else [])])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr


@pytest.mark.slow
def test_console_entry_point_error_convention(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "lstm_td3.cli", "train", "--env", "NoSuchEnv-v0",
                           "--run-dir", str(tmp_path / "r")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown environment" in lines[0], proc.stderr


@pytest.mark.slow
def test_benchmark_smoke():
    from lstm_td3.bench import run_benchmark

    out = run_benchmark(quick=True, hidden=8, capacity=4000, train_steps=150, threads=1,
                        modes=("eager",), peers=False)  # compiled path: test_agent.py
    assert out["replay"]["loop_and_vectorised_agree"] is True
    assert out["replay"]["history_speedup_vs_python_loop"] > 1
    fig = out["hidden_8"]
    assert fig["training"]["eager"]["1_envs"]["env_steps_per_s"] > 0
    assert fig["training"]["eager"]["4_envs"]["updates"] == 2 * 2 * 150  # UTD 1, 2 epochs
    assert out["roofline"]["fp32_matmul_gflops"] > 0
    assert 0 < fig["update"]["eager"]["fraction_of_roofline"] < 1
    assert "compiled" not in fig["update"] and "compiled_speedup" not in fig["update"]
    with pytest.raises(ValueError, match="modes"):
        run_benchmark(quick=True, hidden=8, modes=("jit",))
    assert set(out["goals"]) == {"train_steps_per_s_ge_300", "history_speedup_ge_20x",
                                 "per_overhead_le_2x", "300_steps_per_s_possible_at_roofline"}


@pytest.mark.slow
def test_peer_benchmark_smoke():
    pytest.importorskip("stable_baselines3")
    from lstm_td3.bench import run_peer_benchmark

    out = run_peer_benchmark(quick=True, threads=1, steps=200, lstm_steps=110, repeats=1)
    # same schedule: both TD3s make the same number of updates
    assert out["ours_td3_hist0"]["updates"] == out["sb3_td3"]["updates"] > 0
    assert out["ratios_vs_sb3"]["ours_td3_hist0"]["env_steps_per_s"] > 0


def test_flop_count_known_answer():
    from lstm_td3.agent import TD3Config
    from lstm_td3.bench import network_flops, update_flops
    from lstm_td3.networks import NetworkConfig

    net = NetworkConfig((4,), 4, 1, (4,), (4,), (4,), hist_with_past_act=False)
    # memory: 5 x (pre 2*2*4 + LSTM 2*16*(4+4)) + after 2*4*4; head: cur 2*3*4 + post 2*8*4 + 2*4
    assert network_flops(2, 3, 1, net, 5) == (1488, 1392)
    cfg = TD3Config(max_hist_len=5, policy_delay=2, actor=net, critic=net)
    fa = network_flops(2, 2, 1, net, 5)[0]  # actor: current features on obs only
    fc = 1488
    expected = fa + 2 * fc + 6 * fc + (3 * fa + fc + (fc - 1392)) / 2
    assert update_flops(2, 1, cfg, 10) == pytest.approx(10 * expected)
    # paper sizes (the original's defaults, L=5, batch 100) on Pendulum: 1.559 GFLOP per update
    # (1.560 with past actions in the critics' history too: 2 x 128 FLOP more per window step
    # in each critic's pre-LSTM layer, x 5 steps x 100 windows x 8.5 memory passes per update:
    # 2 target critics, 2 critic forwards + 2 backwards (2 each), Q1 in every 2nd actor step)
    assert update_flops(2, 1, TD3Config(), 100) == pytest.approx(1.5591e9, rel=1e-4)
    assert update_flops(2, 1, TD3Config(critic=NetworkConfig()), 100) - update_flops(
        2, 1, TD3Config(), 100) == 256 * 5 * 100 * 8.5
    # hist 0: no memory branch; actor 2x128 + 128x128 + 128x128 + 128x1 per forward
    assert network_flops(2, 2, 1, NetworkConfig(), 0) == (2 * (256 + 16384 + 16384 + 128), 0)


@pytest.mark.slow
def test_pybullet_pomdp_smoke(tmp_path):
    import importlib.util

    if importlib.util.find_spec("pybullet_envs_gymnasium") is None:
        pytest.skip("pybullet_envs_gymnasium not installed (pip install 'lstm-td3[pybullet]')")
    cfg = _cfg(env_id="InvertedPendulumBulletEnv-v0", total_steps=80, steps_per_epoch=80,
               start_steps=40, update_after=30, update_every=20, num_test_episodes=1,
               max_episode_steps=40)
    result = train(cfg, tmp_path / "bullet", show_progress=False, tensorboard=False)
    assert result.steps == 80 and result.updates == 50
    assert load_agent(tmp_path / "bullet")[0].obs_dim == 3  # 5 entries minus 2 velocities
