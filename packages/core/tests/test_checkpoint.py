import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from physml_core import (
    CheckpointError,
    checkpoint_path,
    latest,
    load_checkpoint,
    save_checkpoint,
)

SCRIPT = Path(__file__).parent / "scripts" / "train_tiny.py"


@dataclass
class Cfg:
    lr: float = 0.1
    layers: tuple[int, ...] = (4, 2)


def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def test_round_trip_restores_everything(tmp_path):
    model, opt, sched = make()
    extra = {"mean": np.arange(3.0), "scale": torch.ones(2), "names": ["a", "b"]}
    path = save_checkpoint(tmp_path / "c.pt", package="calo", model_name="vae", model=model,
                           optimizer=opt, scheduler=sched, step=17, config=Cfg(), extra=extra)
    expected_rand = (random.random(), np.random.rand(), torch.rand(1))  # noqa: NPY002
    ckpt = load_checkpoint(path, package="calo", model_name="vae")
    assert ckpt.step == 17 and ckpt.config == {"lr": 0.1, "layers": [4, 2]}
    assert torch.equal(ckpt.extra["mean"], torch.arange(3.0, dtype=torch.float64))
    assert ckpt.extra["names"] == ["a", "b"]
    model2, opt2, sched2 = make()
    with torch.no_grad():
        for p in model2.parameters():
            p.add_(1.0)
    ckpt.restore(model=model2, optimizer=opt2, scheduler=sched2)
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert opt2.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    assert sched2.get_last_lr() == sched.get_last_lr()
    got = (random.random(), np.random.rand(), torch.rand(1))  # noqa: NPY002
    assert got[0] == expected_rand[0] and got[1] == expected_rand[1]
    assert torch.equal(got[2], expected_rand[2])


def test_dict_of_models(tmp_path):
    gen, disc = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    path = save_checkpoint(tmp_path / "g.pt", package="calo", model_name="gan",
                           model={"generator": gen, "discriminator": disc})
    ckpt = load_checkpoint(path)
    other = torch.nn.Linear(2, 2)
    ckpt.restore(model={"generator": other}, rng=False)
    assert torch.equal(other.weight, gen.weight)
    with pytest.raises(CheckpointError, match=r"no model state for \['critic'\]"):
        ckpt.restore(model={"critic": torch.nn.Linear(2, 1)})
    with pytest.raises(CheckpointError, match="does not fit"):
        ckpt.restore(model={"generator": torch.nn.Linear(3, 3)})


def test_wrong_package_or_model_refused(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", package="clarm", model_name="cvae",
                           model=torch.nn.Linear(1, 1))
    with pytest.raises(CheckpointError, match="belongs to package 'clarm'.*not 'calo'"):
        load_checkpoint(path, package="calo")
    with pytest.raises(CheckpointError, match="holds model 'cvae', expected 'lstm'"):
        load_checkpoint(path, package="clarm", model_name="lstm")


def test_corrupt_truncated_missing_and_foreign_files(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", package="p", model_name="m",
                           model=torch.nn.Linear(50, 50))
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    for name, content in (("text.pt", b"hello world\n"), ("empty.pt", b""),
                          ("json.pt", b'{"a": 1}')):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_checkpoint(tmp_path / name)
    torch.save({"weights": torch.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a physml checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_loading_never_runs_code(tmp_path):
    torch.save({"format_version": 1, "package": "p", "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_checkpoint(tmp_path / "evil.pt")


def test_latest_and_folder_loading(tmp_path):
    assert latest(tmp_path) is None
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)
    for step in (5, 100, 20):
        save_checkpoint(checkpoint_path(tmp_path, step), package="p", model_name="m", step=step)
    (tmp_path / "checkpoints" / "ckpt_notanumber.pt").write_text("x")
    assert latest(tmp_path) == checkpoint_path(tmp_path, 100)
    assert load_checkpoint(tmp_path).step == 100


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", package="p", model_name="m", step=1)
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, package="p", model_name="m", step=2)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def _run(run_dir, *extra):
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), *extra],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    full = _run(tmp_path / "full")
    assert full.returncode == 0, full.stderr
    killed = _run(tmp_path / "resumed", "--die-after-epoch", "2")
    assert killed.returncode != 0  # SIGKILL: no clean shutdown
    assert latest(tmp_path / "resumed") == checkpoint_path(tmp_path / "resumed", 2)
    resumed = _run(tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(full.stdout), json.loads(resumed.stdout)
    assert a["weights"] == b["weights"] and a["bias"] == b["bias"]
    steps = [json.loads(line)["step"]
             for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_unreadable_file_error_names_the_cause_not_torch_advice(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(junk)
    message = str(info.value)
    assert "not a readable checkpoint" in message and "weights_only" not in message
    assert len(message.splitlines()) == 1
