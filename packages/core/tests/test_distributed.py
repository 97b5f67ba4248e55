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
    distributed_sampler,
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
    assert distributed_sampler(list(range(4)), ctx) is None
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
    assert result["world_size"] == 2
    # the target is y = 1.5 x0 - 2 x1 + 0.5 x2 + 0.3: eight epochs of SGD get close
    assert abs(result["weights"][0] - 1.5) < 0.3 and abs(result["weights"][1] + 2.0) < 0.3
    losses = [json.loads(line)["loss"]
              for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 8 and losses[-1] < 0.1 * losses[0]
    assert len(list((tmp_path / "ddp" / "checkpoints").glob("ckpt_*.pt"))) == 8
