"""Command-line options written once: in a job's config dataclass, over one shared table.

Like CleanRL's ``Args`` dataclass, each option of a physml command lives in one place, a field
of the job's config dataclass with its default and help text::

    @dataclass
    class TrainConfig(RunConfig):
        epochs: int = field(default=30, metadata=opt("Training epochs.", min=1))

    @cli.command()
    @options_from(TrainConfig)
    @click.pass_context
    def train(ctx, **values):
        config = config_from_cli(TrainConfig, values, ctx)

:func:`options_from` turns every field that carries :func:`opt` metadata (nested config
dataclasses included) into a click option; :func:`config_from_cli` builds the config back,
applying only what the user typed on top of a base instance (a named preset, say).

Names every package shares are spelled, typed and defaulted once, in :data:`SHARED_OPTIONS`
(``-n/--num``, ``--device`` with default ``auto``, ``--seed`` in [0, 2**32), ``--threads``,
``--max-minutes``, ...); a field of such a name takes its flags, type and help from the table,
and ``tests/test_cli_vocabulary.py`` checks every command of every package against it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .config import from_dict, to_dict

__all__ = [
    "FORBIDDEN_SPELLINGS",
    "SHARED_OPTIONS",
    "SharedOption",
    "config_from_cli",
    "opt",
    "options_from",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_UNSET: Any = object()


@dataclass(frozen=True)
class SharedOption:
    """The one spelling of an option many commands share.

    ``default`` is the value every command must default to, or unset where each command has
    its own (``-n``: how many samples depends on the command).
    """

    flags: tuple[str, ...]
    help: str
    type: click.ParamType | None = None
    default: Any = _UNSET

    @property
    def fixed_default(self) -> bool:
        return self.default is not _UNSET


def _path_type(file_okay: bool = True, dir_okay: bool = True) -> click.Path:
    return click.Path(file_okay=file_okay, dir_okay=dir_okay, path_type=Path)


#: The canonical table: field name -> spelling, type, help and (where fixed) default.
SHARED_OPTIONS: dict[str, SharedOption] = {
    "num": SharedOption(("-n", "--num"), "How many to produce.", click.IntRange(min=1)),
    "seed": SharedOption(("--seed",), "Random seed (runs are reproducible).",
                         click.IntRange(0, 2**32 - 1), 0),
    "device": SharedOption(("--device",), "Compute device: auto, cpu, cuda, cuda:N or mps.",
                           click.STRING, "auto"),
    "threads": SharedOption(("--threads",), "CPU threads for torch (default: torch's own "
                            "choice).", click.IntRange(min=1), None),
    "max_minutes": SharedOption(("--max-minutes",), "Stop gracefully after this many minutes "
                                "(checkpoint written); the same command resumes.",
                                click.FloatRange(min=0, min_open=True)),
    "run_dir": SharedOption(("--run-dir",), "Run folder (config, logs, checkpoints). Default: "
                            "runs/<package>/<model>-<timestamp>.",
                            click.Path(file_okay=False), None),
    "resume": SharedOption(("--resume/--no-resume",), "Resume the run folder's latest "
                           "checkpoint (same package, model and config only); --no-resume "
                           "starts afresh and moves the old files aside.", None, True),
    "output": SharedOption(("-o", "--output"), "File or folder this command writes."),
    "data": SharedOption(("--data",), "Input data file (HDF5)."),
    "checkpoint": SharedOption(("--checkpoint",), "Checkpoint file (or run folder: its latest "
                               "checkpoint)."),
    "epochs": SharedOption(("--epochs",), "Training epochs.", click.IntRange(min=1)),
    "batch_size": SharedOption(("--batch-size",), "Batch size.", click.IntRange(min=1)),
    "shard": SharedOption(("--shard",), "Produce only shard I of N (0-based), e.g. for a "
                          "Slurm array; merge the pieces afterwards."),
}

#: Spellings that must not appear: each means a shared option under another name.
FORBIDDEN_SPELLINGS: dict[str, str] = {
    "--n-samples": "-n/--num", "--num-samples": "-n/--num", "--nsamples": "-n/--num",
    "--count": "-n/--num", "--number": "-n/--num", "--n": "-n/--num",
    "--out": "-o/--output", "--outdir": "-o/--output", "--output-dir": "-o/--output",
    "--cpu": "--device", "--gpu": "--device", "--cuda": "--device",
    "--n-threads": "--threads", "--num-threads": "--threads", "--nthreads": "--threads",
    "--time-limit": "--max-minutes", "--minutes": "--max-minutes",
    "--no-time-limit": "--max-minutes", "--random-seed": "--seed",
    "--rundir": "--run-dir", "--ckpt": "--checkpoint",
    "--n-epochs": "--epochs", "--num-epochs": "--epochs", "--bs": "--batch-size",
}


def opt(help: str, *, flag: str | None = None, short: str | None = None,
        min: float | None = None, max: float | None = None, metavar: str | None = None,
        required: bool = False) -> dict[str, Any]:
    """Metadata for ``dataclasses.field(metadata=...)`` that makes the field a CLI option.

    An empty ``help`` takes the shared table's text (for the names in :data:`SHARED_OPTIONS`).
    ``flag`` overrides the spelling (default ``--field-name``; booleans get
    ``--name/--no-name``), ``short`` adds a one-letter alias, ``min``/``max`` bound numbers,
    ``required`` makes the option mandatory on the command line (the field's default, usually
    None, then only serves library callers, who must set it).
    """
    return {"physml_option": {"help": help, "flag": flag, "short": short, "min": min,
                              "max": max, "metavar": metavar, "required": required}}


def _strip_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


class CommaList(click.ParamType):
    """``"1,2,3"`` -> ``[1, 2, 3]`` for ``list[int]`` / ``tuple[float, ...]`` fields."""

    def __init__(self, item: type[int] | type[float]) -> None:
        self.item = item
        self.name = f"{item.__name__},..."

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> list[int] | list[float]:
        if isinstance(value, (list, tuple)):
            return [self.item(v) for v in value]
        try:
            return [self.item(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.item.__name__}s",
                      param, ctx)


def _click_type(hint: Any, meta: Mapping[str, Any]) -> click.ParamType:
    lo, hi = meta.get("min"), meta.get("max")
    if typing.get_origin(hint) in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if args and all(a is args[0] for a in args) and args[0] in (int, float):
            return CommaList(args[0])
    if typing.get_origin(hint) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(hint)])
    if hint is int:
        return click.IntRange(None if lo is None else int(lo), None if hi is None else int(hi))
    if hint is float:
        return click.FloatRange(lo, hi)
    if hint is Path:
        return click.Path(path_type=Path)
    if hint is str:
        return click.STRING
    raise TypeError(f"no command-line type for {hint!r}: give the field no opt() metadata or "
                    "use int, float, str, bool, Path, a Literal or a list of int/float")


@dataclass(frozen=True)
class _Spec:
    path: tuple[str, ...]  # field path through nested config dataclasses
    name: str  # click parameter name (the leaf field name)
    hint: Any
    optional: bool
    meta: Mapping[str, Any]
    default: Any


def _specs(cls: type, prefix: tuple[str, ...] = ()) -> Iterator[_Spec]:
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        hint, optional = _strip_optional(hints[f.name])
        meta = f.metadata.get("physml_option")
        if meta is None:
            if dataclasses.is_dataclass(hint) and isinstance(hint, type):
                yield from _specs(hint, (*prefix, f.name))
            continue
        yield _Spec((*prefix, f.name), f.name, hint, optional, meta,
                    getattr(defaults, f.name))


def _option(spec: _Spec) -> Callable[[F], F]:
    shared = SHARED_OPTIONS.get(spec.name)
    meta = spec.meta
    help_text = meta["help"] or (shared.help if shared else "")
    kwargs: dict[str, Any] = {"show_default": True, "help": help_text}
    if meta.get("metavar"):
        kwargs["metavar"] = meta["metavar"]
    if spec.hint is bool:
        flag = meta.get("flag") or (shared.flags[0] if shared else
                                    f"--{spec.name.replace('_', '-')}/"
                                    f"--no-{spec.name.replace('_', '-')}")
        return click.option(flag, spec.name, default=bool(spec.default), **kwargs)
    if shared is not None and not meta.get("flag"):
        flags = list(shared.flags)
        ptype = shared.type if shared.type is not None else _click_type(spec.hint, meta)
        if meta.get("min") is not None or meta.get("max") is not None:
            ptype = _click_type(spec.hint, meta)
    else:
        flags = [meta.get("flag") or f"--{spec.name.replace('_', '-')}"]
        if meta.get("short"):
            flags.insert(0, meta["short"])
        ptype = _click_type(spec.hint, meta)
    if meta.get("required"):
        kwargs.update(required=True, show_default=False)
    elif spec.default is None:
        # explicit: without a default click >= 8.3 reports an UNSET sentinel, not None
        kwargs.update(default=None, show_default=False)
    elif isinstance(spec.default, Path):
        kwargs["default"] = str(spec.default)
    elif isinstance(spec.default, (list, tuple)):
        kwargs["default"] = ",".join(str(v) for v in spec.default)
    else:
        kwargs["default"] = spec.default
    return click.option(*flags, spec.name, type=ptype, **kwargs)


def options_from(cls: type, *, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Decorator adding one click option per ``opt``-annotated field of dataclass ``cls``
    (recursing into nested config dataclasses), except the field names in ``exclude``."""
    specs = [s for s in _specs(cls) if s.name not in exclude]
    names = [s.name for s in specs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise TypeError(f"{cls.__name__}: option name(s) {clash} appear in two nested configs")

    def decorate(func: F) -> F:
        for spec in reversed(specs):
            func = _option(spec)(func)
        return func

    return decorate


def config_from_cli(cls: type[T], values: Mapping[str, Any], ctx: click.Context | None = None,
                    base: T | None = None) -> T:
    """Build ``cls`` from click parameter ``values``.

    With ``ctx``, only options the user gave (command line or environment) override ``base``
    (default ``cls()``), so a named preset keeps its values unless typed; without ``ctx`` every
    value in ``values`` overrides.  Raises :class:`~physml_core.errors.ConfigError` (a user
    error) for invalid combinations.
    """
    data = to_dict(base if base is not None else cls())
    for spec in _specs(cls):
        if spec.name not in values:
            continue
        if ctx is not None and ctx.get_parameter_source(spec.name) in (
                ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None):
            continue
        value = values[spec.name]
        node = data
        for key in spec.path[:-1]:
            node = node[key]
        node[spec.path[-1]] = str(value) if isinstance(value, Path) else value
    return from_dict(cls, data)
