"""Every command of every package speaks one vocabulary: the shared option names of
physml_core.options.SHARED_OPTIONS are spelled, typed and defaulted as the table says, and no
command spells a shared option another way."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import click
import pytest

from physml_core.options import FORBIDDEN_SPELLINGS, SHARED_OPTIONS

CLIS = {"calo": "calo.cli", "clarm": "clarm.cli", "alternators": "alternators.cli",
        "beamenv": "beamenv.cli", "lstm-td3": "lstm_td3.cli"}


def _commands(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):
        for name, sub in sorted(cmd.commands.items()):
            yield from _commands(sub, f"{path} {name}")
    else:
        yield path, cmd


def _flags(param: click.Option) -> tuple[str, ...]:
    if param.is_flag and param.secondary_opts:
        return (f"{param.opts[0]}/{param.secondary_opts[0]}",)
    return tuple(param.opts)


def _fits(a: click.ParamType, b: click.ParamType, exact: bool) -> bool:
    """Type ``a`` is the table's ``b`` (or, unless ``exact``, a narrower range of it)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (click.IntRange, click.FloatRange)):
        assert isinstance(b, (click.IntRange, click.FloatRange))
        if exact:
            return (a.min, a.max, a.min_open, a.max_open) == (b.min, b.max, b.min_open,
                                                              b.max_open)
        lo_ok = b.min is None or (a.min is not None and a.min >= b.min)
        hi_ok = b.max is None or (a.max is not None and a.max <= b.max)
        return lo_ok and hi_ok
    return True


def _problems(package: str) -> list[str]:
    group = importlib.import_module(CLIS[package]).cli
    spelled = {flag: name for name, s in SHARED_OPTIONS.items() for flag in s.flags}
    out: list[str] = []
    for path, cmd in _commands(group, package):
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            flags = _flags(p)
            for flag in (*p.opts, *p.secondary_opts):
                if flag in FORBIDDEN_SPELLINGS:
                    out.append(f"{path}: {flag} (use {FORBIDDEN_SPELLINGS[flag]})")
            for flag in flags:
                if flag in spelled and p.name != spelled[flag]:
                    out.append(f"{path}: {flag} must be the shared option '{spelled[flag]}'")
            shared = SHARED_OPTIONS.get(p.name or "")
            if shared is None:
                continue
            if flags != shared.flags:
                out.append(f"{path}: {p.name} spelled {'/'.join(flags)}, table says "
                           f"{'/'.join(shared.flags)}")
            if shared.fixed_default and p.default != shared.default:
                out.append(f"{path}: {'/'.join(flags)} default {p.default!r}, table says "
                           f"{shared.default!r}")
            # options with one default everywhere (seed, device, threads) have one type too;
            # others may narrow the table's range (a batch needs two showers, say)
            if shared.type is not None and not p.is_flag and not _fits(
                    p.type, shared.type, exact=shared.fixed_default):
                out.append(f"{path}: {'/'.join(flags)} type {p.type!r}, table says "
                           f"{shared.type!r}")
    return out


@pytest.mark.parametrize("package", sorted(CLIS))
def test_cli_speaks_the_shared_vocabulary(package):
    problems = _problems(package)
    assert problems == [], "\n".join(problems)
