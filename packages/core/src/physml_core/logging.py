"""Loggers, run directories, metrics files and progress bars.

Nothing here configures the root logger: importing physml never changes how an application
logs.  The CLI calls :func:`configure_console` once, explicitly.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tqdm.auto import tqdm

from .config import save_json

__all__ = [
    "RunLogger",
    "configure_console",
    "default_run_dir",
    "get_logger",
    "progress",
    "read_metrics",
]

T = TypeVar("T")

logging.getLogger("physml").addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """Logger under the ``physml`` hierarchy (``physml.<name>``); never configures handlers."""
    if not name.startswith("physml"):
        name = f"physml.{name}"
    return logging.getLogger(name)


def configure_console(level: str | int = "INFO") -> None:
    """Send ``physml.*`` log records to stderr at ``level`` (called by CLIs, not at import)."""
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
        level = numeric
    logger = logging.getLogger("physml")
    logger.setLevel(level)
    if not any(getattr(h, "_physml_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               datefmt="%H:%M:%S"))
        handler._physml_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


def default_run_dir(package: str, run_name: str | None = None, root: str | Path = "runs") -> Path:
    """``runs/<package>/<run_name>``; the name defaults to a UTC timestamp."""
    if run_name is None:
        run_name = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path(root) / package / run_name


def progress(
    iterable: Iterable[T] | None = None,
    total: int | None = None,
    desc: str | None = None,
    disable: bool | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm progress bar that stays silent when stderr is not a terminal (logs, CI)."""
    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)


class RunLogger:
    """Owns a run directory: ``config.json``, TensorBoard event files and ``metrics.jsonl``.

    Parameters
    ----------
    run_dir:
        Folder of the run; created if missing.  Appending to an existing run (resume) keeps
        the earlier lines of ``metrics.jsonl``.
    config:
        Dataclass or mapping written to ``config.json`` (atomically).
    tensorboard:
        Write TensorBoard event files with :class:`torch.utils.tensorboard.SummaryWriter`.
    enabled:
        ``False`` turns every method into a no-op (non-zero ranks in distributed training).
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: Any = None,
        tensorboard: bool = True,
        enabled: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._writer = None
        self._jsonl = None
        self._start = time.monotonic()
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if config is not None:
            save_json(self.run_dir / "config.json", config)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def log_scalars(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
        """Record ``scalars`` at ``step`` to TensorBoard and one JSON line per call."""
        if not self.enabled:
            return
        record: dict[str, Any] = {
            "step": int(step),
            "time_s": round(time.monotonic() - self._start, 3),
        }
        for key, value in scalars.items():
            name = f"{prefix}{key}"
            value = float(value)
            record[name] = value if math.isfinite(value) else str(value)
            if self._writer is not None:
                self._writer.add_scalar(name, value, int(step))
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()

    def log_text(self, tag: str, text: str, step: int = 0) -> None:
        if self.enabled and self._writer is not None:
            self._writer.add_text(tag, text, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
        if self._jsonl is not None:
            self._jsonl.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``metrics.jsonl`` file written by :class:`RunLogger` (skips a torn last line)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records

