"""The shared training layer: resume policy, cadence, pruning, time limit, step unit."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from physml_core.checkpoint import latest, load_checkpoint
from physml_core.errors import CheckpointError, ConfigError
from physml_core.training import Clock, config_hash, fit, load_trained

_spec = importlib.util.spec_from_file_location(
    "train_tiny", Path(__file__).parent / "scripts" / "train_tiny.py")
assert _spec is not None and _spec.loader is not None
tiny = importlib.util.module_from_spec(_spec)
sys.modules["train_tiny"] = tiny
_spec.loader.exec_module(tiny)


def _config(tmp_path: Path, **kw: object) -> tiny.TinyConfig:
    base = tiny.TinyConfig(run_dir=str(tmp_path / "run"), device="cpu", tensorboard=False)
    return replace(base, **kw)


def _weights(path: Path) -> list[float]:
    return load_checkpoint(path).state["model"]["model"]["weight"].flatten().tolist()


def test_checkpoint_records_step_unit_hash_and_config(tmp_path):
    config = _config(tmp_path, epochs=3, checkpoint_every=2, keep_checkpoints=5)
    result = fit(tiny.TinyJob, config, progress_bar=False)
    assert result.completed and result.step == 3 and result.step_unit == "epoch"
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["ckpt_000000002.pt", "ckpt_000000003.pt"]  # every 2 epochs and the end
    ckpt, stored = load_trained(result.checkpoint, "physml-core", tiny.TinyConfig)
    assert ckpt.step_unit == "epoch" and ckpt.step == 3
    assert ckpt.config_hash == config_hash(config, tiny.TinyJob.resume_free)
    assert stored.epochs == 3 and stored.lr == config.lr
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]
    assert {"train/loss", "val/mse"} <= set(json.loads(lines[0]))


def test_resume_continues_and_equals_one_long_run(tmp_path):
    one = fit(tiny.TinyJob, _config(tmp_path / "a", epochs=4), progress_bar=False)
    fit(tiny.TinyJob, _config(tmp_path / "b", epochs=2), progress_bar=False)
    more = fit(tiny.TinyJob, _config(tmp_path / "b", epochs=4), progress_bar=False)  # free field
    assert more.step == 4
    assert _weights(one.checkpoint) == pytest.approx(_weights(more.checkpoint), abs=1e-7)


def test_resume_refuses_another_config_in_one_line(tmp_path):
    fit(tiny.TinyJob, _config(tmp_path, epochs=1), progress_bar=False)
    with pytest.raises(CheckpointError) as info:
        fit(tiny.TinyJob, _config(tmp_path, epochs=2, lr=0.01), progress_bar=False)
    message = str(info.value)
    assert "lr" in message and "--no-resume" in message and "\n" not in message
    with pytest.raises(CheckpointError, match="lr, seed"):
        fit(tiny.TinyJob, _config(tmp_path, epochs=2, lr=0.01, seed=3), progress_bar=False)


def test_resume_refuses_another_package_or_model(tmp_path):
    fit(tiny.TinyJob, _config(tmp_path, epochs=1), progress_bar=False)

    class OtherModel(tiny.TinyJob):
        @property
        def model_name(self) -> str:
            return "other"

    class OtherPackage(tiny.TinyJob):
        package = "calo"

    with pytest.raises(CheckpointError, match="holds a 'tiny' run, not 'other'"):
        fit(OtherModel, _config(tmp_path, epochs=2), progress_bar=False)
    with pytest.raises(CheckpointError, match="belongs to package 'physml-core'"):
        fit(OtherPackage, _config(tmp_path, epochs=2), progress_bar=False)


def test_no_resume_starts_afresh_and_keeps_old_files(tmp_path):
    first = fit(tiny.TinyJob, _config(tmp_path, epochs=2), progress_bar=False)
    old = _weights(first.checkpoint)
    again = fit(tiny.TinyJob, _config(tmp_path, epochs=2, lr=0.01, resume=False),
                progress_bar=False)
    assert again.step == 2 and _weights(again.checkpoint) != old
    moved = list((tmp_path / "run").glob("replaced-*/checkpoints/ckpt_000000002.pt"))
    assert len(moved) == 1 and _weights(moved[0]) == old


def test_time_limit_stops_with_a_checkpoint_and_resumes(tmp_path, monkeypatch):
    ticks = iter(range(0, 10_000, 40))  # each call to the clock advances 40 s
    monkeypatch.setattr(time, "monotonic", lambda: float(next(ticks)))
    stopped = fit(tiny.TinyJob, _config(tmp_path, epochs=50, max_minutes=1.0),
                  progress_bar=False)
    assert not stopped.completed and 0 < stopped.step < 50
    assert latest(tmp_path / "run") == stopped.checkpoint
    monkeypatch.undo()
    done = fit(tiny.TinyJob, _config(tmp_path, epochs=50), progress_bar=False)
    assert done.completed and done.step == 50


def test_clock_without_limit_never_expires():
    from physml_core.distributed import DistContext

    clock = Clock(None, DistContext())
    assert not clock.expired() and not clock.interrupted


def test_run_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="max_minutes"):
        tiny.TinyConfig(max_minutes=0)
    with pytest.raises(ConfigError, match="seed"):
        tiny.TinyConfig(seed=-1)


def test_chunked_steps_log_and_checkpoint_once_per_chunk(tmp_path):
    class Chunked(tiny.TinyJob):
        steps_per_call = 3

    config = _config(tmp_path, epochs=10, checkpoint_every=4, keep_checkpoints=10)
    result = fit(Chunked, config, progress_bar=False)
    assert result.step == 10 and result.completed
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [3, 6, 9, 10]
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["ckpt_000000006.pt", "ckpt_000000009.pt", "ckpt_000000010.pt"]


def test_default_run_folders_never_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = fit(tiny.TinyJob, _config(tmp_path, epochs=1, run_dir=None), progress_bar=False)
    second = fit(tiny.TinyJob, _config(tmp_path, epochs=1, run_dir=None), progress_bar=False)
    assert first.run_dir != second.run_dir
    assert first.run_dir.parent == Path("runs") / "physml-core"
    assert first.run_dir.name.startswith("tiny-") and second.step == 1


def test_close_runs_once_even_when_training_fails(tmp_path):
    closed: list[bool] = []

    class Failing(tiny.TinyJob):
        def train_step(self, step, clock):
            raise RuntimeError("boom")

        def close(self) -> None:
            closed.append(True)

    with pytest.raises(RuntimeError, match="boom"):
        fit(Failing, _config(tmp_path, epochs=2), progress_bar=False)
    assert closed == [True]


def test_load_trained_upgrades_old_config_keys(tmp_path):
    result = fit(tiny.TinyJob, _config(tmp_path, epochs=1), progress_bar=False)
    ckpt = load_checkpoint(result.checkpoint)
    ckpt.state["config"]["learning_rate"] = ckpt.state["config"].pop("lr")
    old = tmp_path / "old.pt"
    torch.save(ckpt.state, old)
    with pytest.raises(CheckpointError, match="learning_rate"):
        load_trained(old, "physml-core", tiny.TinyConfig)

    def upgrade(stored: dict) -> dict:
        stored = dict(stored)
        stored["lr"] = stored.pop("learning_rate")
        return stored

    _, config = load_trained(old, "physml-core", tiny.TinyConfig, upgrade=upgrade)
    assert config.lr == tiny.TinyConfig().lr


class _Polling(tiny.TinyJob):
    """Polls the clock after every batch, as calo does inside an epoch."""

    def train_step(self, step, clock):
        order = torch.randperm(256, generator=torch.Generator().manual_seed(step))
        for lo in range(0, 256, self.config.batch_size):
            index = order[lo:lo + self.config.batch_size]
            self.optimizer.zero_grad()
            torch.nn.functional.mse_loss(self.net(self.x[index]), self.y[index]).backward()
            self.optimizer.step()
            if clock.expired():
                break
        return {"loss": 0.0}


def test_a_partial_step_never_overwrites_the_clean_checkpoint(tmp_path, monkeypatch):
    clean = fit(_Polling, _config(tmp_path, epochs=2), progress_bar=False)
    weights = _weights(clean.checkpoint)
    ticks = iter(range(0, 10_000, 25))  # the clock passes 60 s inside epoch 3
    monkeypatch.setattr(time, "monotonic", lambda: float(next(ticks)))
    stopped = fit(_Polling, _config(tmp_path, epochs=5, max_minutes=1.0), progress_bar=False)
    monkeypatch.undo()
    assert not stopped.completed and stopped.step == 2
    assert stopped.checkpoint == clean.checkpoint and _weights(stopped.checkpoint) == weights
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").open()]
    assert steps == [1, 2]  # nothing logged for the partial epoch


def test_a_partial_first_step_is_saved_when_no_checkpoint_exists(tmp_path, monkeypatch):
    ticks = iter(range(0, 10_000, 25))
    monkeypatch.setattr(time, "monotonic", lambda: float(next(ticks)))
    stopped = fit(_Polling, _config(tmp_path, epochs=5, max_minutes=1.0), progress_bar=False)
    monkeypatch.undo()
    assert not stopped.completed and stopped.step == 0
    assert stopped.checkpoint.name == "ckpt_000000000.pt" and stopped.checkpoint.exists()
    done = fit(_Polling, _config(tmp_path, epochs=5), progress_bar=False)
    assert done.completed and done.step == 5
