"""Data-parallel training under torchrun (2 Gloo processes on the CPU) equals one process
training on the same global batches, and only rank 0 writes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physml_core.checkpoint import load_checkpoint

SCRIPT = Path(__file__).parent / "scripts" / "train_ddp.py"


def _script():  # the script as a module: the single-process run happens in this process
    spec = importlib.util.spec_from_file_location("clarm_train_ddp", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


def _weights(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir).state["model"][name]


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(tmp_path, tiny_h5):
    _script().run(str(tiny_h5), tmp_path / "one")
    # the LSTM of both runs reads the same CVAE, so its comparison stands on its own
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ddp = subprocess.run([*_torchrun(), "--standalone", "--nproc-per-node", "2", str(SCRIPT),
                          str(tiny_h5), str(tmp_path / "two"), "--cvae-for-lstm",
                          str(tmp_path / "one" / "cvae")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    for model in ("cvae", "lstm"):
        alone = _weights(tmp_path / "one" / model, model)
        split = _weights(tmp_path / "two" / model, model)
        assert alone.keys() == split.keys()
        for key, value in alone.items():
            if value.is_floating_point():
                torch.testing.assert_close(split[key], value, rtol=1e-5, atol=1e-6,
                                           msg=f"{model} {key}")
            else:
                assert torch.equal(split[key], value), f"{model} {key}"
        losses = [[json.loads(line)["train/loss"] for line in
                   (tmp_path / run / model / "metrics.jsonl").read_text().splitlines()]
                  for run in ("one", "two")]
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    ckpt = load_checkpoint(tmp_path / "two" / "cvae")
    assert ckpt.step == 1 and ckpt.step_unit == "epoch" and "latents_min" in ckpt.extra
    rank0 = json.loads((tmp_path / "two" / "written-by-rank0.json").read_text())
    rank1 = json.loads((tmp_path / "two" / "written-by-rank1.json").read_text())
    assert rank0 == {"checkpoints": 1 + 2, "logging": True}
    assert rank1 == {"checkpoints": 0, "logging": False}  # only rank 0 writes
