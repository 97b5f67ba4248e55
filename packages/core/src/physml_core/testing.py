"""Test support for trainers built on :mod:`physml_core.training`.

:func:`record_writes` counts what one process writes while a training runs, so that a test
launching ``torchrun --nproc-per-node 2`` can check that only rank 0 saved checkpoints and
logged (each rank writes ``written-by-rank<R>.json`` into a folder the test reads).
:func:`invoke` and :func:`error_line` run a package's click CLI in a test and check that a
refused command printed one line without a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner, Result

from . import training

__all__ = ["error_line", "invoke", "record_writes"]


def invoke(cli: click.Command, *args: object, expect: int = 0) -> Result:
    """Run ``cli`` with ``args`` (each turned into a string) and check its exit status."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == expect, (result.output, getattr(result, "stderr", ""))
    return result


def error_line(result: Result) -> str:
    """The error output of a refused command, checked to be one line without a traceback."""
    text = (getattr(result, "stderr", "") or result.output).strip()
    assert len(text.splitlines()) == 1, text
    assert "Traceback" not in text
    return text


@contextmanager
def record_writes(folder: str | Path) -> Iterator[dict[str, Any]]:
    """Count this process's checkpoint saves and note whether its run logger was enabled while
    the block runs; on a clean exit write them (and anything the caller added to the yielded
    dict) to ``folder/written-by-rank<RANK>.json``."""
    writes: dict[str, Any] = {"checkpoints": 0, "logging": False}
    real_save, real_logger = training.save_checkpoint, training.RunLogger

    def counting_save(*args: Any, **kwargs: Any) -> Path:
        writes["checkpoints"] += 1
        return real_save(*args, **kwargs)

    def watched_logger(*args: Any, **kwargs: Any) -> training.RunLogger:
        writes["logging"] = writes["logging"] or bool(kwargs.get("enabled", True))
        return real_logger(*args, **kwargs)

    training.save_checkpoint = counting_save
    training.RunLogger = watched_logger  # type: ignore[assignment,misc]
    try:
        yield writes
    finally:
        training.save_checkpoint, training.RunLogger = real_save, real_logger  # type: ignore[misc]
    rank = int(os.environ.get("RANK", "0"))
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    (target / f"written-by-rank{rank}.json").write_text(json.dumps(writes))
