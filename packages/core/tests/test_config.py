from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from physml_core import ConfigError, from_dict, load_json, save_json, to_dict


@dataclass
class Inner:
    width: int = 8


@dataclass
class Job:
    lr: float = 1e-3
    epochs: int = 2
    model: Literal["gan", "vae"] = "vae"
    layers: tuple[int, ...] = (8, 8)
    out: Path | None = None
    inner: Inner = field(default_factory=Inner)


def test_round_trip(tmp_path):
    job = Job(lr=0.5, epochs=3, model="gan", layers=(4, 2), out=Path("x.h5"), inner=Inner(3))
    save_json(tmp_path / "cfg.json", job)
    data = load_json(tmp_path / "cfg.json")
    assert data["out"] == "x.h5" and data["layers"] == [4, 2]
    assert from_dict(Job, data) == job
    assert to_dict(job)["inner"] == {"width": 3}


def test_int_accepted_for_float_and_defaults_fill_in():
    job = from_dict(Job, {"lr": 1})
    assert job.lr == 1.0 and isinstance(job.lr, float) and job.epochs == 2


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"lrr": 0.1}, "unknown key"),
        ({"epochs": "3"}, "expected an integer"),
        ({"epochs": 2.5}, "expected an integer"),
        ({"model": "flow"}, "not one of"),
        ({"layers": 3}, "expected a list"),
        ({"lr": True}, "expected a number"),
    ],
)
def test_bad_config(mapping, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(Job, mapping)


def test_load_json_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_json(tmp_path / "bad.json")
