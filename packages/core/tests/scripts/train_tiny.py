"""A tiny regression job on :func:`physml_core.training.fit`, the way every physml trainer is
written: the job supplies the model, one epoch and validation; ``fit`` owns the run folder,
resume policy, checkpoints, logs, the time limit and DDP.

Runs as ``python train_tiny.py RUN_DIR`` and ``torchrun --nproc-per-node 2 train_tiny.py
RUN_DIR``.  ``--die-after-epoch K`` kills the process (SIGKILL, no clean-up) right after epoch
K's checkpoint, to test resumption.  Rank 0 prints the final weights as JSON; every rank lists
how many checkpoints it saved and whether it logged in ``RUN_DIR/written-by-rank<R>.json``
(the test checks that only rank 0 writes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from physml_core.checkpoint import Checkpoint
from physml_core.distributed import wrap_model
from physml_core.options import opt
from physml_core.testing import record_writes
from physml_core.training import Clock, RunConfig, TrainingJob, TrainState, fit


@dataclass
class TinyConfig(RunConfig):
    epochs: int = field(default=4, metadata=opt("Epochs.", min=1))
    batch_size: int = field(default=32, metadata=opt("Global batch size.", min=1))
    lr: float = field(default=0.05, metadata=opt("SGD learning rate."))
    die_after_epoch: int = -1


class TinyJob(TrainingJob[TinyConfig]):
    package: ClassVar[str] = "physml-core"
    resume_free: ClassVar[frozenset[str]] = frozenset({"epochs", "die_after_epoch"})

    @property
    def model_name(self) -> str:
        return "tiny"

    @property
    def total_steps(self) -> int:
        return self.config.epochs

    def setup(self, resume: Checkpoint | None) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 3, generator=generator)
        self.y = self.x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3
        self.model = torch.nn.Linear(3, 1)
        self.net = wrap_model(self.model, self.ctx)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.lr)

    def state(self) -> TrainState:
        return TrainState(models={"model": self.model}, optimizers={"sgd": self.optimizer})

    def train_step(self, step: int, clock: Clock) -> dict[str, float]:
        if step == self.config.die_after_epoch:
            os.kill(os.getpid(), signal.SIGKILL)  # right after the previous epoch's checkpoint
        order = torch.randperm(256, generator=torch.Generator().manual_seed(step))
        total, batches = 0.0, 0
        for lo in range(0, 256, self.config.batch_size):
            index = order[lo:lo + self.config.batch_size][self.ctx.rank::self.ctx.world_size]
            self.optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net(self.x[index]), self.y[index])
            loss.backward()
            self.optimizer.step()
            total, batches = total + float(loss.detach()), batches + 1
        return {"loss": total / batches}

    def validate(self, step: int) -> dict[str, float]:
        with torch.no_grad():
            return {"mse": float(torch.nn.functional.mse_loss(self.model(self.x), self.y))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--die-after-epoch", type=int, default=-1)
    parser.add_argument("--no-resume", action="store_true")
    args = parser.parse_args()
    config = TinyConfig(run_dir=args.run_dir, epochs=args.epochs, device="cpu",
                        die_after_epoch=args.die_after_epoch, resume=not args.no_resume,
                        tensorboard=False)
    with record_writes(args.run_dir):
        result = fit(TinyJob, config, progress_bar=False)
    if int(os.environ.get("RANK", "0")) == 0:
        model = torch.load(result.checkpoint, weights_only=True)["model"]["model"]
        print(json.dumps({"weights": model["weight"].flatten().tolist(),
                          "bias": float(model["bias"][0]), "step": result.step}))


if __name__ == "__main__":
    main()
