"""``calo train`` under torchrun through the shared layer (two Gloo processes on the CPU).

Every rank draws the random numbers of the whole global batch (energies, latent vectors, VAE
noise) and takes its share of the rows; every loss term is a mean over the global batch (the
VAE sparsity term's batch means are all-reduced) and CaloGAN's batch normalisation and
minibatch discrimination compute their statistics over the global batch (torch's
SyncBatchNorm refuses CPU tensors in torch 2.15, so calo's layers all-reduce themselves).  So
two processes train to the weights of one process with the same global batch, to float
rounding, for both models; only rank 0 writes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from calo.artifacts import load_model
from calo.config import preset_config
from calo.sim import SimConfig, simulate_to_file
from calo.train import train
from physml_core.logging import read_metrics

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"
EPOCHS = 2
VAE_ARGS = ("--epochs", str(EPOCHS), "--batch-size", "16", "--max-rows", "100", "--device",
            "cpu", "--no-tensorboard", "--seed", "5")

_spec = importlib.util.spec_from_file_location("calo_ddp_train", SCRIPT)
assert _spec is not None and _spec.loader is not None
ddp_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ddp_script)


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Path:
    """One ``torchrun --nproc-per-node 2`` launch training both models (the VAE by the CLI)."""
    out = tmp_path_factory.mktemp("calo_ddp")
    data = out / "train.h5"
    simulate_to_file(data, 100, SimConfig(seed=4))
    simulate_to_file(out / "gamma.h5", 100, SimConfig(particle="gamma", seed=4))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([*_torchrun(), "--standalone", "--nproc-per-node", "2", str(SCRIPT),
                           str(out), str(data), str(out / "vae-run"), str(out / "gan-run"),
                           *VAE_ARGS], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _writes(out: Path) -> tuple[dict, dict]:
    return (json.loads((out / "written-by-rank0.json").read_text()),
            json.loads((out / "written-by-rank1.json").read_text()))


@pytest.mark.slow
def test_torchrun_vae_equals_one_process_and_only_rank0_writes(launched, tmp_path):
    ddp_dir = launched / "vae-run"
    config = replace(preset_config("cpu", "vae"), data=str(launched / "train.h5"),
                     run_dir=str(tmp_path / "one"), epochs=EPOCHS, batch_size=16, max_rows=100,
                     device="cpu", tensorboard=False, seed=5)
    one = train(config, progress_bar=False)
    ddp, alone = load_model(ddp_dir), load_model(one.checkpoint)
    assert ddp.step == alone.step == EPOCHS and ddp.step_unit == "epoch"
    _assert_same_weights(ddp.model.state_dict(), alone.model.state_dict(), 1e-4, 5e-5)
    ddp_rows = read_metrics(ddp_dir / "metrics.jsonl")
    one_rows = read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [r["step"] for r in ddp_rows] == list(range(1, EPOCHS + 1))
    for key in ("train/loss_total", "train/loss_sparsity", "val/loss"):
        assert [r[key] for r in ddp_rows] == pytest.approx([r[key] for r in one_rows],
                                                           rel=1e-4), key
    rank0, rank1 = _writes(launched / "vae")
    assert (rank0["checkpoints"], rank0["logging"]) == (EPOCHS, True)
    assert (rank1["checkpoints"], rank1["logging"]) == (0, False)  # only rank 0 writes
    assert rank0["parameters_sha256"] == rank1["parameters_sha256"]


def _assert_same_weights(a: dict, b: dict, rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for key, value in b.items():
        torch.testing.assert_close(a[key], value, rtol=rtol, atol=atol, msg=key)


@pytest.mark.slow
def test_torchrun_calogan_equals_one_process_and_only_rank0_writes(launched, tmp_path):
    ddp_dir = launched / "gan-run"
    rank0, rank1 = _writes(launched / "gan")
    assert (rank0["checkpoints"], rank0["logging"]) == (EPOCHS, True)
    assert (rank1["checkpoints"], rank1["logging"]) == (0, False)  # only rank 0 writes
    assert rank0["parameters_sha256"] == rank1["parameters_sha256"]  # DDP keeps ranks equal
    one = train(ddp_script.tiny_gan_config(str(launched / "train.h5"),
                                           str(tmp_path / "one")), progress_bar=False)
    ddp, alone = load_model(ddp_dir, expect="gan"), load_model(one.checkpoint)
    assert ddp.step == alone.step == EPOCHS and ddp.preprocessor is None
    # batch-norm running statistics included (the global batch's, on both sides)
    _assert_same_weights(ddp.model.state_dict(), alone.model.state_dict(), 1e-4, 1e-5)
    ddp_rows = read_metrics(ddp_dir / "metrics.jsonl")
    one_rows = read_metrics(tmp_path / "one" / "metrics.jsonl")
    for key in ("train/loss_d", "train/loss_g_adv", "train/loss_g_energy",
                "val/etot_over_einc"):
        assert [r[key] for r in ddp_rows] == pytest.approx([r[key] for r in one_rows],
                                                           rel=1e-4), key


@pytest.mark.slow
def test_torchrun_multi_particle_calogan_equals_one_process(launched, tmp_path):
    ddp_dir = launched / "gan-run-acgan"
    rank0, rank1 = _writes(launched / "acgan")
    assert (rank0["checkpoints"], rank0["logging"]) == (EPOCHS, True)
    assert (rank1["checkpoints"], rank1["logging"]) == (0, False)
    assert rank0["parameters_sha256"] == rank1["parameters_sha256"]
    files = [str(launched / "train.h5"), str(launched / "gamma.h5")]
    one = train(ddp_script.tiny_gan_config(files, str(tmp_path / "one")), progress_bar=False)
    ddp, alone = load_model(ddp_dir, expect="gan"), load_model(one.checkpoint)
    assert ddp.particles == alone.particles == ["eplus", "gamma"]
    # 18 iterations (two files of 36 training rows): float rounding, amplified by Adam's
    # per-weight normalisation and by minibatch discrimination, leaves a largest difference
    # of 6e-4 (a minibatch-discrimination kernel; Adam steps are 5e-5 to 2e-4) and a mean
    # absolute difference of 4e-7 (measured); the logged losses agree to 2e-5
    a, b = ddp.model.state_dict(), alone.model.state_dict()
    _assert_same_weights(a, b, 1e-4, 2e-3)
    floats = [k for k in b if b[k].is_floating_point()]
    mean_diff = (sum(float((a[k] - b[k]).abs().sum()) for k in floats)
                 / sum(b[k].numel() for k in floats))
    assert mean_diff < 1e-5
    ddp_rows = read_metrics(ddp_dir / "metrics.jsonl")
    one_rows = read_metrics(tmp_path / "one" / "metrics.jsonl")
    for key in ("train/loss_d", "train/loss_d_aux", "train/loss_g_aux", "train/aux_acc_real",
                "train/aux_acc_fake", "val/aux_acc_real", "val/aux_acc_gen"):
        assert [r[key] for r in ddp_rows] == pytest.approx([r[key] for r in one_rows],
                                                           rel=1e-4), key
