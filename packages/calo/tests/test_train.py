"""Training through physml_core.training: time limit inside an epoch, resume, the typed loader."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from calo.artifacts import LoadedModel, load_model
from calo.config import TrainConfig
from calo.models import CaloVAE, CaloVAEConfig
from calo.sim import SimConfig, simulate_to_file
from calo.train import train
from physml_core.checkpoint import latest
from physml_core.errors import CheckpointError


@pytest.fixture(scope="module")
def small_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calo_train") / "train.h5"
    simulate_to_file(path, 120, SimConfig(seed=8))
    return path


def _config(data: Path, run_dir: Path, **kw: object) -> TrainConfig:
    values: dict = dict(model="vae", data=str(data), run_dir=str(run_dir), epochs=2,
                        batch_size=20, max_rows=None, device="cpu", tensorboard=False,
                        max_minutes=None, vae=CaloVAEConfig(latent_dim=4, hidden=(32,)))
    values.update(kw)
    return TrainConfig(**values)


def test_time_limit_stops_inside_an_epoch_and_the_same_run_resumes(small_file, tmp_path,
                                                                   monkeypatch):
    ticks = iter(range(0, 100_000, 40))  # each clock reading advances 40 s
    monkeypatch.setattr(time, "monotonic", lambda: float(next(ticks)))
    stopped = train(_config(small_file, tmp_path / "run", max_minutes=1.0), progress_bar=False)
    # the clock expired after the second batch of epoch 0 (of 5): checkpoint at epoch 0
    assert not stopped.completed and stopped.step == 0
    assert latest(tmp_path / "run") == stopped.checkpoint
    monkeypatch.undo()
    done = train(_config(small_file, tmp_path / "run"), progress_bar=False)
    assert done.completed and done.step == 2 and done.step_unit == "epoch"


def test_load_model_returns_what_the_run_was_trained_with(small_file, tmp_path):
    result = train(_config(small_file, tmp_path / "run", epochs=1), progress_bar=False)
    loaded = load_model(tmp_path / "run")
    assert isinstance(loaded, LoadedModel) and isinstance(loaded.model, CaloVAE)
    assert not loaded.model.training and loaded.step == 1 and loaded.step_unit == "epoch"
    assert loaded.checkpoint == result.checkpoint and loaded.model_name == "calovae"
    lo, hi = loaded.energy_range_gev
    assert 1.0 <= lo < hi <= 100.0
    assert loaded.preprocessor is not None and loaded.preprocessor.fitted
    assert loaded.config.vae == CaloVAEConfig(latent_dim=4, hidden=(32,))
    assert loaded.provenance is not None
    assert {(p.seed, p.setting) for p in loaded.provenance} == {(8, "eplus")}
    assert max(p.stop for p in loaded.provenance) == 120  # training and validation rows
    with pytest.raises(CheckpointError, match="expected 'calogan'"):
        load_model(tmp_path / "run", expect="gan")


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_resumed_run_equals_one_long_run(small_file, tmp_path, model):
    from calo.models import CaloGANConfig

    tiny = CaloGANConfig(latent_dim=8, d_conv_channels=4, d_lc_channels=(2, 2, 2),
                         g_dense_channels=2, g_conv_channels=2, g_lc_channels=2)
    kw = {"model": model, "gan": tiny, "max_rows": 60}
    train(_config(small_file, tmp_path / "long", **kw), progress_bar=False)
    train(_config(small_file, tmp_path / "parts", epochs=1, **kw), progress_bar=False)
    resumed = train(_config(small_file, tmp_path / "parts", **kw), progress_bar=False)
    assert resumed.step == 2
    long, parts = load_model(tmp_path / "long"), load_model(tmp_path / "parts")
    a, b = long.model.state_dict(), parts.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_split_rows_is_the_shared_held_out_rule():
    import pytest

    from calo.stream import split_rows

    assert split_rows(1000, 0.1) == ((0, 900), (900, 1000))
    assert split_rows(1000, 0.1, max_rows=50) == ((0, 45), (45, 50))
    assert split_rows(10, 0.01) == ((0, 8), (8, 10))  # at least two held out
    assert split_rows(10, 0.0) == ((0, 10), (10, 10))
    with pytest.raises(ValueError, match="for training"):
        split_rows(3, 0.5)
