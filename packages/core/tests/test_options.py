"""Options generated from config dataclasses over the shared table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from physml_core.cli import make_group
from physml_core.options import SHARED_OPTIONS, config_from_cli, opt, options_from
from physml_core.training import RunConfig


@dataclass
class Inner:
    hidden: int = field(default=16, metadata=opt("Hidden units.", min=1))
    kind: Literal["a", "b"] = field(default="a", metadata=opt("Kind of body."))
    shape: list[int] | None = field(default=None, metadata=opt("Image shape, e.g. 4,4."))
    widths: tuple[float, ...] = field(default=(0.5, 1.0), metadata=opt("Widths."))


@dataclass
class Job(RunConfig):
    epochs: int = field(default=5, metadata=opt(""))
    lr: float = field(default=1e-3, metadata=opt("Learning rate.", min=0))
    data: str | None = field(default=None, metadata=opt("", required=True))
    threads: int | None = field(default=None, metadata=opt(""))
    inner: Inner = field(default_factory=Inner)
    internal: int = 7  # no opt(): not an option


PRESET = Job(epochs=50, lr=1e-4)


def _cli():
    group = make_group("demo", "demo")

    @group.command()
    @options_from(Job)
    @click.option("--preset", type=click.Choice(["default", "long"]), default="default")
    @click.pass_context
    def train(ctx, preset, **values):
        config = config_from_cli(Job, values, ctx, base=PRESET if preset == "long" else None)
        click.echo(repr(config))

    return group


def _run(*args):
    return CliRunner().invoke(_cli(), ["train", *args])


def test_generated_options_follow_the_table_and_field_defaults():
    cmd = _cli().commands["train"]
    params = {p.name: p for p in cmd.params}
    assert "internal" not in params and {"hidden", "kind", "seed", "device"} <= set(params)
    for name in ("seed", "device", "threads", "max_minutes", "run_dir", "epochs"):
        assert tuple(params[name].opts) + tuple(params[name].secondary_opts) == \
            SHARED_OPTIONS[name].flags or params[name].secondary_opts, name
    assert params["device"].default == "auto" and params["seed"].default == 0
    assert params["resume"].opts == ["--resume"] and params["resume"].secondary_opts == [
        "--no-resume"]
    assert params["epochs"].default == 5 and params["hidden"].default == 16
    assert "Hidden units." in params["hidden"].help
    assert params["threads"].help == SHARED_OPTIONS["threads"].help
    assert params["run_dir"].default is None and params["max_minutes"].default is None
    assert params["data"].required


def test_config_from_cli_applies_typed_values_only():
    out = _run("--data", "f.h5", "--preset", "long", "--hidden", "32", "--kind", "b",
               "--no-resume", "--seed", "4")
    assert out.exit_code == 0, out.output
    assert "epochs=50" in out.output and "lr=0.0001" in out.output  # preset kept
    assert "hidden=32" in out.output and "kind='b'" in out.output and "resume=False" in out.output
    assert "seed=4" in out.output and "data='f.h5'" in out.output
    assert "shape=None" in out.output and "widths=(0.5, 1.0)" in out.output
    out = _run("--data", "f.h5", "--shape", "4,5", "--widths", "2")
    assert out.exit_code == 0, out.output
    assert "shape=[4, 5]" in out.output and "widths=(2.0,)" in out.output


@pytest.mark.parametrize("args, needle", [
    (("--seed", "-1"), "--seed"),
    (("--epochs", "0"), "--epochs"),
    (("--kind", "c"), "--kind"),
    (("--max-minutes", "0"), "--max-minutes"),
    ((), "--data"),
    (("--shape", "4,x"), "--shape"),
])
def test_bad_values_are_one_line_usage_errors(args, needle):
    out = _run(*(("--data", "x") if needle != "--data" else ()), *args)
    assert out.exit_code == 2 and needle in out.output
    assert "Traceback" not in out.output
