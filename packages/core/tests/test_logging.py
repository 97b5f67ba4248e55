import json
import logging
import subprocess
import sys

from physml_core import RunLogger, default_run_dir, get_logger, progress
from physml_core.logging import configure_console, read_metrics


def test_import_does_not_configure_root_logger():
    code = ("import logging, physml_core, physml_core.cli; "
            "print(len(logging.getLogger().handlers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_get_logger_namespace():
    assert get_logger("calo.train").name == "physml.calo.train"
    assert get_logger("physml.x").name == "physml.x"


def test_configure_console_rejects_unknown_level():
    import pytest

    with pytest.raises(ValueError, match="unknown log level"):
        configure_console("LOUD")


def test_run_logger_writes_config_tensorboard_and_jsonl(tmp_path):
    run = tmp_path / "runs" / "calo" / "r1"
    with RunLogger(run, config={"lr": 0.1}) as log:
        log.log_scalars(1, {"loss": 2.0, "acc": 0.5})
        log.log_scalars(2, {"loss": float("nan")})
    assert json.loads((run / "config.json").read_text()) == {"lr": 0.1}
    records = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["loss"] == 2.0 and records[1]["loss"] == "nan"
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    # resume appends
    with RunLogger(run, tensorboard=False) as log:
        log.log_scalars(3, {"loss": 1.0})
    assert len(read_metrics(run / "metrics.jsonl")) == 3


def test_tensorboard_scalars_are_readable(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with RunLogger(tmp_path / "r") as log:
        for step in range(3):
            log.log_scalars(step, {"loss": 1.0 / (step + 1)})
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    values = [e.value for e in acc.Scalars("loss")]
    assert values == [1.0, 0.5, 1.0 / 3.0] or all(
        abs(a - b) < 1e-6 for a, b in zip(values, [1.0, 0.5, 1 / 3], strict=True))


def test_disabled_logger_writes_nothing(tmp_path):
    with RunLogger(tmp_path / "r", config={"a": 1}, enabled=False) as log:
        log.log_scalars(1, {"x": 1})
    assert not (tmp_path / "r").exists()


def test_default_run_dir():
    assert default_run_dir("clarm", "abc").as_posix() == "runs/clarm/abc"
    assert default_run_dir("clarm").parent.as_posix() == "runs/clarm"


def test_progress_silent_without_tty(capsys):
    assert list(progress(range(3), desc="x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    logging.getLogger("physml").handlers  # noqa: B018 (no side effects expected)
