"""One training loop for every physml package: run folder, resume, checkpoints, logs, DDP.

Like Stable-Baselines3, where the loop is written once and each algorithm supplies its
``train()``, a package supplies a :class:`TrainingJob` (build the model from data or from a
checkpoint, run one step, validate, say what else a checkpoint must hold) and :func:`fit` does
the rest, identically for every package:

Run folder
    ``config.run_dir``, or ``runs/<package>/<model>-<UTC timestamp>`` when None (under torchrun
    rank 0 chooses it).  It holds ``config.json``, ``metrics.jsonl``, TensorBoard events and
    ``checkpoints/ckpt_<step>.pt``.
What a step is
    The job's ``step_unit``: ``"epoch"`` for the supervised trainers (calo, clarm, alternators),
    ``"env_step"`` for reinforcement learning; every checkpoint says which.
Resume policy (the only one)
    A run folder that holds checkpoints resumes only a run of the same package, model and
    config hash (:func:`config_hash`: the config without the fields that may change between
    sessions of one run, such as the device, the time limit or the total length).  Anything
    else is a one-line :class:`~physml_core.errors.CheckpointError` naming the fields that
    differ.  ``resume=False`` (``--no-resume``) starts afresh and moves the old checkpoints and
    metrics to ``replaced-<timestamp>/`` inside the folder, so nothing is lost.
Checkpoints
    Every ``checkpoint_every`` steps and at the end (or when the time limit stops the run), on
    rank 0 only, atomically; only the newest ``keep_checkpoints`` are kept.
Time limit
    ``max_minutes`` stops the run gracefully after the step in progress, writes a checkpoint
    and returns; the same command resumes.  A job with long steps polls :meth:`Clock.expired`
    and stops inside a step: unless the job can resume there (``resumes_inside_step``), that
    partial step is discarded and the checkpoint of its start kept (saved only when none
    exists), so checkpoints and logged metrics always describe whole steps.
DDP
    Under ``torchrun`` every rank builds the same job (same seed); the job shards each global
    batch by ``ctx.rank`` and ``ctx.world_size``.  Metrics are averaged over ranks, and only
    rank 0 logs and writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

import torch

from .checkpoint import Checkpoint, checkpoint_path, latest, load_checkpoint, save_checkpoint
from .config import from_dict, to_dict
from .device import seed_everything
from .distributed import (
    DistContext,
    all_reduce_mean,
    barrier,
    broadcast_object,
    init_distributed,
)
from .errors import CheckpointError, ConfigError, PhysmlError
from .logging import RunLogger, get_logger, progress
from .options import opt

__all__ = [
    "RESUME_FREE_FIELDS",
    "Clock",
    "RunConfig",
    "StepUnit",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "TrainingJob",
    "config_hash",
    "fit",
    "load_trained",
]

log = get_logger("physml_core.training")

StepUnit = Literal["epoch", "env_step"]
ConfigT = TypeVar("ConfigT", bound="RunConfig")


@dataclass
class RunConfig:
    """Options every training job shares; each package's training config inherits them.

    The fields named in :data:`RESUME_FREE_FIELDS` may change when a run is resumed; all other
    fields (of the subclass too) enter :func:`config_hash`.
    """

    run_dir: str | None = field(default=None, metadata=opt(""))
    resume: bool = field(default=True, metadata=opt(""))
    seed: int = field(default=0, metadata=opt(""))
    device: str = field(default="auto", metadata=opt(""))
    max_minutes: float | None = field(default=None, metadata=opt(""))
    checkpoint_every: int = field(default=1, metadata=opt(
        "Write a checkpoint every this many steps (and at the end).", min=1))
    keep_checkpoints: int = field(default=2, metadata=opt(
        "Keep only the newest this many checkpoints.", min=1))
    tensorboard: bool = field(default=True, metadata=opt("Write TensorBoard event files."))

    def __post_init__(self) -> None:
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise ConfigError("checkpoint_every and keep_checkpoints must be at least 1")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes must be positive, got {self.max_minutes}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2**32), got {self.seed}")


#: Fields of :class:`RunConfig` that a resumed session may change (with a job's own
#: ``TrainingJob.resume_free`` fields, e.g. the total number of epochs).
RESUME_FREE_FIELDS: frozenset[str] = frozenset(
    {"run_dir", "resume", "device", "max_minutes", "checkpoint_every", "keep_checkpoints",
     "tensorboard"})


def _hashed_part(config: RunConfig, free: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in to_dict(config).items() if k not in RESUME_FREE_FIELDS | free}


def config_hash(config: RunConfig, free: frozenset[str] = frozenset()) -> str:
    """SHA-256 (first 16 hex digits) of the config's canonical JSON without the fields that
    may change between sessions of one run (:data:`RESUME_FREE_FIELDS` and ``free``)."""
    text = json.dumps(_hashed_part(config, free), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TrainState(NamedTuple):
    """What a checkpoint restores: mappings name -> object with ``state_dict()``.  Models must
    be the plain modules, not their DDP wrappers."""

    models: Mapping[str, torch.nn.Module]
    optimizers: Mapping[str, Any] = {}
    schedulers: Mapping[str, Any] = {}


class TrainingDiverged(PhysmlError):
    """A training loss became NaN or infinite."""


class Clock:
    """Wall-clock budget of one training session (``max_minutes``; None: no limit).

    Jobs with long steps poll :meth:`expired` inside a step and return early; the trainer then
    keeps the checkpoint of the step's start (see ``TrainingJob.resumes_inside_step``).  Under
    DDP all ranks agree (rank 0 decides).
    """

    def __init__(self, max_minutes: float | None, ctx: DistContext) -> None:
        self.max_minutes = max_minutes
        self.ctx = ctx
        self.started = time.monotonic()
        self.interrupted = False

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        """True once the budget is spent; also marks the step in progress as interrupted."""
        if self.max_minutes is None:
            return False
        over = self.seconds > 60.0 * self.max_minutes
        if self.ctx.is_distributed:
            over = bool(broadcast_object(over, self.ctx))
        self.interrupted = self.interrupted or over
        return over


class TrainingJob(ABC, Generic[ConfigT]):
    """What a package supplies to :func:`fit`: its science, nothing of the bookkeeping.

    Subclasses set ``package``, ``step_unit`` and ``resume_free`` and implement the abstract
    methods.  ``fit`` calls ``setup(resume)`` once (``resume`` is the checkpoint being resumed,
    so the job can restore what it fitted on the data, such as normalisers, from
    ``resume.extra``), restores :meth:`state` from it, then ``train_step(step, clock)`` for
    ``step`` = start, start + steps_per_call, ... below ``total_steps``, ``validate(step)``
    after each, and ``extra_state(final)`` whenever it writes a checkpoint (every
    ``checkpoint_every`` step units, at the end and at the time limit).
    """

    package: ClassVar[str]
    step_unit: ClassVar[StepUnit] = "epoch"
    #: Config fields besides RESUME_FREE_FIELDS that a resumed session may change.
    resume_free: ClassVar[frozenset[str]] = frozenset({"epochs"})
    #: Whether the job's checkpoints can resume *inside* a ``train_step`` call (its
    #: ``extra_state`` records the position reached, as lstm_td3's does).  If False (the
    #: default), a call that the time limit stops part-way is discarded when a checkpoint of
    #: the step it started from exists, so that checkpoint and the logged metrics stay those
    #: of whole steps; the same command then redoes that step.
    resumes_inside_step: ClassVar[bool] = False
    #: Step units one ``train_step`` call advances (the last call of a run may advance fewer):
    #: 1 for an epoch-by-epoch trainer; an RL job counting env steps runs a chunk of them per
    #: call, so that logging, validation and checkpoint checks happen once per chunk.
    steps_per_call: int = 1

    def __init__(self, config: ConfigT, ctx: DistContext) -> None:
        """Keep this cheap (no data reading): ``fit`` asks ``model_name`` before ``setup``.
        ``fit`` sets ``self.config.run_dir`` and ``self.run_dir`` before calling ``setup``."""
        self.config = config
        self.ctx = ctx
        self.run_dir = Path(config.run_dir) if config.run_dir else Path(".")

    @property
    @abstractmethod
    def model_name(self) -> str:
        """Name of the model trained (stored in checkpoints; resume checks it)."""

    @property
    @abstractmethod
    def total_steps(self) -> int:
        """Length of the whole run, in ``step_unit``s."""

    @abstractmethod
    def setup(self, resume: Checkpoint | None) -> None:
        """Build data, model and optimisers (from ``resume.extra`` when resuming)."""

    @abstractmethod
    def state(self) -> TrainState:
        """Models, optimisers and schedulers that checkpoints save and restore."""

    @abstractmethod
    def train_step(self, step: int, clock: Clock) -> dict[str, float]:
        """Run step units ``[step, min(step + steps_per_call, total_steps))`` (0-based) and
        return this rank's training metrics."""

    def validate(self, step: int) -> dict[str, float]:
        """Validation metrics after step ``step`` (all ranks call it); none by default."""
        return {}

    def extra_state(self, final: bool) -> dict[str, Any]:
        """Plain data, arrays or tensors a checkpoint holds besides the states (normalisers,
        data provenance); ``final`` is True for the run's last checkpoint."""
        return {}

    def close(self) -> None:
        """Release what ``setup`` opened (environments, files); ``fit`` calls it once, also
        when training stops with an error."""


@dataclass
class TrainResult:
    """What :func:`fit` returns."""

    run_dir: Path
    checkpoint: Path
    step: int
    step_unit: StepUnit
    completed: bool
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)


def _default_run_dir(package: str, model_name: str) -> Path:
    """``runs/<package>/<model>-<UTC time>``; a second run started within the same second
    gets ``-2``, ``-3``, ... so that it never resumes the first by accident."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / package / f"{model_name}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(stored) | set(current))
    return [k for k in keys if stored.get(k) != current.get(k)]


def _resume_checkpoint(job: TrainingJob[Any], config: RunConfig, run_dir: Path,
                       digest: str) -> Checkpoint | None:
    found = latest(run_dir)
    if found is None:
        return None
    ckpt = load_checkpoint(found, package=job.package)
    if ckpt.model_name != job.model_name:
        raise CheckpointError(
            f"{run_dir}: holds a '{ckpt.model_name}' run, not '{job.model_name}'; use another "
            "--run-dir, or --no-resume to start afresh there")
    if ckpt.config_hash != digest:
        if isinstance(ckpt.config, Mapping):
            free = RESUME_FREE_FIELDS | job.resume_free
            stored = {k: v for k, v in ckpt.config.items() if k not in free}
            diff = _differences(stored, _hashed_part(config, job.resume_free))
            what = f"these settings differ: {', '.join(diff)}" if diff else \
                "its config hash differs"
        else:
            what = "it records no config"
        raise CheckpointError(
            f"{run_dir}: holds a {job.model_name} run with another configuration ({what}); "
            "use the same settings to resume it, another --run-dir, or --no-resume to start "
            "afresh")
    if ckpt.step_unit != job.step_unit:
        raise CheckpointError(f"{found}: counts {ckpt.step_unit}s, this job {job.step_unit}s")
    return ckpt


def _move_aside(run_dir: Path) -> None:
    """--no-resume: keep the earlier run's checkpoints and metrics under replaced-<stamp>/."""
    stale = [p for p in (run_dir / "checkpoints", run_dir / "metrics.jsonl",
                         run_dir / "tensorboard") if p.exists()]
    if not stale:
        return
    target = run_dir / f"replaced-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}"
    target.mkdir(parents=True)
    for p in stale:
        shutil.move(str(p), str(target / p.name))
    log.warning("--no-resume: moved the earlier run's files to %s", target)


def _prune(run_dir: Path, keep: int) -> None:
    files = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    for old in files[:-keep]:
        old.unlink(missing_ok=True)


def fit(job_type: type[TrainingJob[ConfigT]], config: ConfigT,
        progress_bar: bool = True) -> TrainResult:
    """Run ``job_type`` with ``config`` to its end (or its time limit) and return the result.

    Works unchanged under ``torchrun`` (see the module docstring for the whole policy).
    """
    ctx = init_distributed(config.device)
    seed_everything(config.seed)  # the same on every rank: jobs draw global batches, then shard
    job = job_type(config, ctx)
    run_dir = Path(config.run_dir) if config.run_dir else _default_run_dir(
        job.package, job.model_name)
    run_dir = Path(broadcast_object(str(run_dir), ctx))
    config = dataclasses.replace(config, run_dir=str(run_dir))
    job.config, job.run_dir = config, run_dir
    digest = config_hash(config, job.resume_free)
    if not config.resume and ctx.is_main:
        _move_aside(run_dir)
    barrier(ctx)
    resume = _resume_checkpoint(job, config, run_dir, digest) if config.resume else None
    try:
        job.setup(resume)
        state = job.state()
        start = 0
        if resume is not None:
            resume.restore(model=state.models, optimizer=state.optimizers or None,
                           scheduler=state.schedulers or None, rng=not ctx.is_distributed)
            start = resume.step
            log.info("resuming %s from %s (%s %d of %d)", job.model_name, resume.path,
                     job.step_unit, start, job.total_steps)
        total = job.total_steps

        def save(step: int, final: bool) -> Path:
            path = checkpoint_path(run_dir, step)
            if ctx.is_main:
                save_checkpoint(path, package=job.package, model_name=job.model_name,
                                model=state.models, optimizer=state.optimizers or None,
                                scheduler=state.schedulers or None, step=step,
                                step_unit=job.step_unit, config_hash=digest,
                                config=to_dict(config), extra=job.extra_state(final))
                _prune(run_dir, config.keep_checkpoints)
            barrier(ctx)
            return path

        def interrupted(step: int) -> Path:
            """The checkpoint after a call the time limit stopped part-way (see the class
            attribute ``resumes_inside_step``)."""
            clean = checkpoint_path(run_dir, step)
            keep = bool(broadcast_object(clean.exists(), ctx)) and not job.resumes_inside_step
            if keep:  # never overwrite a step's clean checkpoint with a partial step
                log.warning("time limit inside %s %d: its partial progress is discarded; the "
                            "checkpoint of %s %d stays and the same command redoes it",
                            job.step_unit, step + 1, job.step_unit, step)
                return clean
            if not job.resumes_inside_step:
                log.warning("time limit inside %s %d, and no checkpoint holds %s %d: saved the "
                            "weights reached as %s, which a resume continues from and "
                            "redoes %s %d on", job.step_unit, step + 1, job.step_unit, step,
                            clean.name, job.step_unit, step + 1)
            return save(step, final=False)

        clock = Clock(config.max_minutes, ctx)
        metrics: dict[str, float] = {}
        checkpoint = resume.path if resume is not None else None
        step = start
        completed = True
        with RunLogger(run_dir, config=config, tensorboard=config.tensorboard,
                       enabled=ctx.is_main) as run_log:
            bar = progress(total=total, initial=start, desc=f"{job.package} {job.model_name}",
                           disable=None if progress_bar and ctx.is_main else True)
            while step < total:
                local = job.train_step(step, clock)
                if clock.interrupted:  # the time limit stopped the call part-way
                    checkpoint = interrupted(step)
                    completed = False
                    break
                done = min(step + job.steps_per_call, total)
                scalars = {f"train/{k}": all_reduce_mean(v, ctx) for k, v in local.items()}
                bad = {k: v for k, v in scalars.items() if "loss" in k and not math.isfinite(v)}
                if bad:
                    raise TrainingDiverged(f"training diverged at {job.step_unit} {done}: "
                                           f"{bad}; lower the learning rate")
                scalars.update({f"val/{k}": v for k, v in job.validate(step).items()})
                run_log.log_scalars(done, scalars)
                metrics = scalars
                bar.update(done - step)
                last = done == total
                if done // config.checkpoint_every > step // config.checkpoint_every or last:
                    checkpoint = save(done, final=last)
                step = done
                if not last and clock.expired():
                    if checkpoint is None or int(checkpoint.stem.split("_")[1]) != done:
                        checkpoint = save(done, final=False)
                    completed = False
                    log.info("time limit of %.1f min reached after %s %d of %d",
                             config.max_minutes, job.step_unit, done, total)
                    break
            bar.close()
        if checkpoint is None:  # nothing left to train (resumed a finished run)
            checkpoint = save(step, final=True)
    finally:
        job.close()
    return TrainResult(run_dir=run_dir, checkpoint=checkpoint, step=step,
                       step_unit=job.step_unit, completed=completed, seconds=clock.seconds,
                       metrics=metrics)


def load_trained(path: str | Path, package: str, config_type: type[ConfigT],
                 model_name: str | None = None,
                 upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 ) -> tuple[Checkpoint, ConfigT]:
    """Read a checkpoint (file or run folder) written by :func:`fit` and its typed config.

    The one way every package loads a trained model: its artifacts module calls this, then
    builds the model from the config and ``ckpt.extra`` and restores the weights.  ``upgrade``
    maps a stored config of an older format (renamed keys) to the current one before it is
    checked.
    """
    ckpt = load_checkpoint(path, package=package, model_name=model_name)
    stored = dict(ckpt.config or {})
    try:
        config = from_dict(config_type, upgrade(stored) if upgrade is not None else stored)
    except ConfigError as exc:
        raise CheckpointError(f"{ckpt.path}: stored config is not a {config_type.__name__} "
                              f"({exc})") from None
    return ckpt, config
