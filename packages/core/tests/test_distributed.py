import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physml_core.distributed import (
    all_reduce_mean,
    init_distributed,
    unwrap_model,
    wrap_model,
)

SCRIPT = Path(__file__).parent / "scripts" / "train_tiny.py"


def test_single_process_context(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert ctx.is_main and not ctx.is_distributed and ctx.device.type == "cpu"
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, ctx) is model and unwrap_model(model) is model
    assert all_reduce_mean(3.0, ctx) == 3.0


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_with_gloo(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [*_torchrun(), "--standalone", "--nproc-per-node", "2", str(SCRIPT), str(tmp_path / "ddp"),
           "--epochs", "8"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    single = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "one"), "--epochs", "8"],
                            capture_output=True, text=True, timeout=180, env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    alone = json.loads(single.stdout.strip().splitlines()[-1])
    # same global batch split over two ranks: the same weights as one process, to float precision
    assert result["weights"] == pytest.approx(alone["weights"], abs=1e-5)
    assert result["bias"] == pytest.approx(alone["bias"], abs=1e-5)
    rank0 = json.loads((tmp_path / "ddp" / "written-by-rank0.json").read_text())
    rank1 = json.loads((tmp_path / "ddp" / "written-by-rank1.json").read_text())
    assert rank0 == {"checkpoints": 8, "logging": True}
    assert rank1 == {"checkpoints": 0, "logging": False}  # only rank 0 writes
    # the target is y = 1.5 x0 - 2 x1 + 0.5 x2 + 0.3: eight epochs of SGD get close
    assert abs(result["weights"][0] - 1.5) < 0.3 and abs(result["weights"][1] + 2.0) < 0.3
    losses = [json.loads(line)["train/loss"]
              for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 8 and losses[-1] < 0.1 * losses[0]
    kept = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").glob("ckpt_*.pt"))
    assert kept == ["ckpt_000000007.pt", "ckpt_000000008.pt"]  # keep_checkpoints = 2
