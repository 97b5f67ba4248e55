"""``torchrun --nproc-per-node 2 alternators train`` through the shared layer: two Gloo
processes on the CPU train to the same weights as one process with the same global batch,
and only rank 0 writes.

The Alternator's training objective is deterministic on fully observed sequences, so the two
runs agree to float precision (DDP averages the gradients of the two halves of every global
batch, which is the gradient of the whole batch's mean loss).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alternators.artifacts import load_model
from alternators.config import TrainConfig
from alternators.models import ModelConfig
from alternators.train import train
from physml_core.logging import read_metrics

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"
EPOCHS = 3


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_torchrun_two_gloo_processes_equal_one_process(tiny_file, tmp_path):
    options = ["--data", str(tiny_file), "--model", "alternator", "--hidden", "8", "--layers",
               "1", "--epochs", str(EPOCHS), "--batch-size", "4", "--checkpoint-every", "1",
               "--device", "cpu", "--no-tensorboard", "--seed", "5"]
    ddp_dir = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([*_torchrun(), "--standalone", "--nproc-per-node", "2", str(SCRIPT),
                          str(tmp_path), *options, "--run-dir", str(ddp_dir), "--threads", "1"],
                         capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr[-3000:]

    one = train(TrainConfig(data=str(tiny_file), run_dir=str(tmp_path / "one"),
                            model=ModelConfig(name="alternator", hidden=8, layers=1),
                            epochs=EPOCHS, batch_size=4, checkpoint_every=1, device="cpu",
                            tensorboard=False, seed=5), progress_bar=False)
    ddp, alone = load_model(ddp_dir), load_model(one.checkpoint)
    assert ddp.step == alone.step == EPOCHS
    ddp_state, alone_state = ddp.model.state_dict(), alone.model.state_dict()
    assert ddp_state.keys() == alone_state.keys()
    for key, value in alone_state.items():
        torch.testing.assert_close(ddp_state[key], value, rtol=1e-5, atol=1e-6, msg=key)

    # the per-epoch training loss (mean over ranks of each rank's half) is the same, too
    ddp_rows, one_rows = read_metrics(ddp_dir / "metrics.jsonl"), read_metrics(
        tmp_path / "one" / "metrics.jsonl")
    assert [r["step"] for r in ddp_rows] == list(range(1, EPOCHS + 1))
    assert [r["train/loss"] for r in ddp_rows] == pytest.approx(
        [r["train/loss"] for r in one_rows], rel=1e-5)

    rank0 = json.loads((tmp_path / "written-by-rank0.json").read_text())
    rank1 = json.loads((tmp_path / "written-by-rank1.json").read_text())
    assert rank0 == {"checkpoints": EPOCHS, "logging": True}
    assert rank1 == {"checkpoints": 0, "logging": False}  # only rank 0 writes
    kept = sorted(p.name for p in (ddp_dir / "checkpoints").glob("ckpt_*.pt"))
    assert kept == ["ckpt_000000002.pt", "ckpt_000000003.pt"]  # keep_checkpoints = 2
