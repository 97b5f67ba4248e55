import itertools
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from physml_core import DataFormatError
from physml_core.cli import (
    checkpoint_option,
    data_option,
    device_option,
    epochs_option,
    make_group,
    num_option,
    output_option,
    parse_shard,
    run_dir_option,
    seed_option,
    shard_bounds,
    shard_option,
)

cli = make_group("physml-core", help="test CLI")


@cli.command()
@data_option()
@output_option()
@num_option(default=3)
@epochs_option(default=1)
@device_option()
@seed_option()
@shard_option()
@run_dir_option()
def job(data, output, num, epochs, device, seed, shard, run_dir):
    from physml_core import resolve_device

    resolve_device(device)
    if data.read_text() == "bad":
        raise DataFormatError(f"{data}: dataset 'x' has shape (2,), expected (N, 3)")
    click.echo(f"ok {num} {epochs} {seed} {shard[0]}/{shard[1]} {output.name}")


@cli.command()
@checkpoint_option()
def bug(checkpoint):
    raise RuntimeError("internal bug")


@cli.command()
def typebug():
    return len(3)  # a TypeError from our own code: a bug, not a user error


def test_success_and_shared_vocabulary(tmp_path):
    data = tmp_path / "d.h5"
    data.write_text("good")
    result = CliRunner().invoke(cli, ["job", "--data", str(data), "-o", "out.h5", "--shard", "1/4",
                                      "--seed", "5", "-n", "7"], standalone_mode=True)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ok 7 1 5 1/4 out.h5"


def _invoke(*args):
    return CliRunner().invoke(cli, list(args))


def _run(*args):
    code = ("import sys; sys.path.insert(0, {!r}); from test_cli import cli; cli()".format(str(__import__("pathlib").Path(__file__).parent)))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["job", "--data", "missing.h5", "-o", "x"], "does not exist"),
        (["job", "--data", "{bad}", "-o", "x"], "dataset 'x' has shape (2,), expected (N, 3)"),
        (["job", "--data", "{good}", "-o", "x", "--device", "cuda:7"], "cuda:7"),
        (["job", "--data", "{good}", "-o", "x", "-n", "0"], "not in the range x>=1"),
        (["job", "--data", "{good}", "-o", "x", "--shard", "4/4"], "need 0 <= i < n"),
        (["job", "--data", "{good}"], "Missing option '-o'"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, args, message):
    (tmp_path / "bad.h5").write_text("bad")
    (tmp_path / "good.h5").write_text("good")
    args = [a.format(bad=tmp_path / "bad.h5", good=tmp_path / "good.h5") for a in args]
    out = _invoke(*args)
    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    assert message in lines[0]
    assert "Traceback" not in out.output


def test_real_process_prints_one_line_without_traceback(tmp_path):
    (tmp_path / "bad.h5").write_text("bad")
    out = _run("job", "--data", str(tmp_path / "bad.h5"), "-o", "x")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'bad.h5'}: dataset 'x' has shape (2,), expected (N, 3)"]


def test_debug_shows_traceback(tmp_path):
    (tmp_path / "bad.h5").write_text("bad")
    out = _run("--debug", "job", "--data", str(tmp_path / "bad.h5"), "-o", "x")
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_internal_bug_is_not_hidden(tmp_path):
    out = _invoke("bug", "--checkpoint", str(tmp_path))
    assert out.exit_code == 1 and isinstance(out.exception, RuntimeError)


def test_type_error_is_a_bug_with_traceback():
    out = _invoke("typebug")
    assert out.exit_code == 1 and isinstance(out.exception, TypeError)


def test_version_and_help():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and "physml-core, version" in result.output
    result = CliRunner().invoke(cli, ["job", "--help"])
    for option in ("--data", "--output", "--run-dir", "--epochs", "--num", "--device", "--seed",
                   "--shard"):
        assert option in result.output


def test_shards_cover_everything_once():
    assert parse_shard(" 2 / 5 ") == (2, 5)
    for bad in ("2", "a/b", "-1/3", "3/3", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    for total in (0, 1, 7, 100):
        for count in (1, 3, 8):
            ranges = [shard_bounds(total, i, count) for i in range(count)]
            assert ranges[0][0] == 0 and ranges[-1][1] == total
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            sizes = [b - a for a, b in ranges]
            assert max(sizes) - min(sizes) <= 1
