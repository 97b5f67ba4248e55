"""One command-line vocabulary and error convention for every physml package.

Shared options are spelled, typed and defaulted once, in
:data:`physml_core.options.SHARED_OPTIONS`; the ``*_option`` decorators here build them from
that table for commands whose options are not generated from a config dataclass
(:func:`physml_core.options.options_from`).  On the group: ``--log-level``, ``--debug``,
``--version``.

Error convention: a user error (:class:`~physml_core.errors.PhysmlError`, ``ValueError``,
``FileNotFoundError``, a click usage error) prints one line ``Error: ...`` on stderr and exits
with status 2, without a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import PhysmlError
from .logging import configure_console
from .options import SHARED_OPTIONS

__all__ = [
    "USER_ERRORS",
    "PhysmlGroup",
    "checkpoint_option",
    "data_option",
    "device_option",
    "epochs_option",
    "make_group",
    "max_minutes_option",
    "num_option",
    "output_option",
    "parse_shard",
    "run_dir_option",
    "seed_option",
    "shard_bounds",
    "shard_option",
    "threads_option",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Exceptions that are the user's to fix: reported in one line, exit status 2. ``TypeError`` is
#: deliberately absent: raised by our own code it is a bug, and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    PhysmlError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
    PermissionError,
)

_DEBUG_ENV = "PHYSML_DEBUG"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PhysmlGroup(click.Group):
    """A click group that applies the physml error convention to all its commands."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get(_DEBUG_ENV, "") not in ("", "0")
        try:
            return super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            if not standalone_mode:
                raise
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if not standalone_mode:
                raise
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            if not standalone_mode:
                raise
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"Error: {_one_line(click.ClickException(exc.format_message()))}{hint}",
                       err=True)
            sys.exit(2)
        except USER_ERRORS as exc:
            if debug or not standalone_mode:
                raise
            click.echo(f"Error: {_one_line(exc)}", err=True)
            sys.exit(2)


def make_group(package: str, help: str, distribution: str | None = None) -> click.Group:
    """Create the top-level click group of a package CLI (``--version``, ``--log-level``,
    ``--debug``)."""
    distribution = distribution or package
    try:
        pkg_version = version(distribution)
    except PackageNotFoundError:
        pkg_version = "unknown"

    @click.group(name=package, cls=PhysmlGroup, help=help,
                 context_settings={"help_option_names": ["-h", "--help"],
                                   "max_content_width": 100})
    @click.version_option(pkg_version, "--version", prog_name=package)
    @click.option("--log-level", default="INFO", show_default=True,
                  type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
                  help="Verbosity of log messages on stderr.")
    @click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
    @click.pass_context
    def group(ctx: click.Context, log_level: str, debug: bool) -> None:
        configure_console(log_level)
        ctx.ensure_object(dict)
        ctx.obj["debug"] = debug

    return group


def _path(exists: bool, dir_okay: bool = False, file_okay: bool = True) -> click.Path:
    return click.Path(exists=exists, dir_okay=dir_okay, file_okay=file_okay, path_type=Path)


def _shared(name: str, help: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A click option spelled, typed and defaulted as :data:`SHARED_OPTIONS` says."""
    spec = SHARED_OPTIONS[name]
    if spec.type is not None:
        kwargs.setdefault("type", spec.type)
    if spec.fixed_default:
        kwargs.setdefault("default", spec.default)
    kwargs.setdefault("show_default", kwargs.get("default") is not None)
    return click.option(*spec.flags, name, help=help or spec.help, **kwargs)


def data_option(required: bool = True, help: str | None = None,
                exists: bool = True) -> Callable[[F], F]:
    return _shared("data", help, type=_path(exists), required=required)


def output_option(required: bool = True, help: str | None = None,
                  default: str | None = None) -> Callable[[F], F]:
    extra: dict[str, Any] = {} if default is None else {"default": default}
    # click >= 8.3 treats an explicit default=None as a default, which disables `required`
    return _shared("output", help, type=click.Path(path_type=Path),
                   required=required and default is None, **extra)


def run_dir_option(default: str | None = None, help: str | None = None) -> Callable[[F], F]:
    return _shared("run_dir", help, type=click.Path(file_okay=False, path_type=Path),
                   default=default)


def checkpoint_option(required: bool = True, help: str | None = None) -> Callable[[F], F]:
    return _shared("checkpoint", help,
                   type=click.Path(exists=True, dir_okay=True, path_type=Path),
                   required=required)


def epochs_option(default: int | None = None, help: str | None = None) -> Callable[[F], F]:
    return _shared("epochs", help, default=default)


def num_option(default: int | None = None, help: str | None = None) -> Callable[[F], F]:
    return _shared("num", help, default=default)


def device_option() -> Callable[[F], F]:
    return _shared("device")


def seed_option() -> Callable[[F], F]:
    return _shared("seed")


def threads_option() -> Callable[[F], F]:
    return _shared("threads")


def max_minutes_option(default: float | None = None) -> Callable[[F], F]:
    return _shared("max_minutes", default=default)


_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0 <= i < n) into ``(i, n)``."""
    match = _SHARD_RE.match(text or "")
    if match is None:
        raise ValueError(f"shard {text!r} is not of the form i/n (e.g. 0/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: need 0 <= i < n")
    return index, count


def _shard_callback(ctx: click.Context, param: click.Parameter,
                    value: str | None) -> tuple[int, int]:
    if value is None:
        return (0, 1)
    try:
        return parse_shard(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def shard_option() -> Callable[[F], F]:
    return _shared("shard", default=None, callback=_shard_callback, metavar="I/N")


def shard_bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of shard ``index`` of ``count`` over ``total`` rows (balanced)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"invalid shard {index}/{count}")
    if total < 0:
        raise ValueError(f"total must be non-negative, got {total}")
    base, rest = divmod(total, count)
    start = index * base + min(index, rest)
    return start, start + base + (1 if index < rest else 0)
