"""Train clarm's CVAE and latent LSTM through ``physml_core.training.fit``, alone or under
``torchrun`` (``tests/test_ddp.py`` compares the two).

``python train_ddp.py DATA OUT [--cvae-for-lstm PATH]`` trains the CVAE for one epoch into
``OUT/cvae`` and, through the command line (``clarm train lstm``), the LSTM for two epochs into
``OUT/lstm`` on the CVAE ``PATH`` (default ``OUT/cvae``).  Every rank records how many
checkpoints it saved and whether it logged in ``OUT/written-by-rank<R>.json`` (only rank 0 may
write).

The CVAE trains with plain SGD here (:class:`SGDCVAEJob`): Adam's first steps move every weight
by about the learning rate whatever the size of its gradient, so weights whose gradient is at
float-noise level differ by about the learning rate between any two summation orders (one
process with 1 or 2 threads differs as much as 1 or 2 processes).  With SGD the weights differ
as little as the gradients do.  The LSTM keeps Adam (it has no such weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from clarm.cli import cli
from clarm.config import CVAETrainConfig
from clarm.train import CVAEJob
from physml_core import training
from physml_core.checkpoint import Checkpoint
from physml_core.testing import record_writes


class SGDCVAEJob(CVAEJob):
    """:class:`clarm.train.CVAEJob` with plain SGD instead of Adam."""

    def setup(self, resume: Checkpoint | None) -> None:
        super().setup(resume)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.config.lr)


def run(data: str, out: Path, cvae_for_lstm: str | None = None) -> None:
    """Both trainings (CVAE: 4 training runs x 3 modules in blocks of 3 runs, global batches
    of 5, 4 and 3 images; LSTM: 4 sequences in global batches of 3 and 1)."""
    training.fit(SGDCVAEJob, CVAETrainConfig(
        data=data, run_dir=str(out / "cvae"), epochs=1, batch_size=5, lr=1e-4, base_filters=4,
        val_fraction=0.34, block_runs=3, device="cpu", tensorboard=False), progress_bar=False)
    cli.main(["train", "lstm", "--data", data, "--cvae", cvae_for_lstm or str(out / "cvae"),
              "--run-dir", str(out / "lstm"), "--epochs", "2", "--batch-size", "3",
              "--hidden", "8", "--device", "cpu", "--no-tensorboard"], standalone_mode=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out", type=Path)
    parser.add_argument("--cvae-for-lstm", default=None)
    args = parser.parse_args()
    with record_writes(args.out):
        run(args.data, args.out, args.cvae_for_lstm)


if __name__ == "__main__":
    main()
