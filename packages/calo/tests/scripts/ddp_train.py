"""``calo train`` under torchrun, instrumented for tests/test_distributed.py.

``python ddp_train.py OUT_DIR vae <calo train options>`` runs the ``calo train`` command line
(``calo.cli``, as ``torchrun ... -m calo.cli train`` does); ``python ddp_train.py OUT_DIR gan
DATA RUN_DIR`` trains a tiny CaloGAN (:func:`tiny_gan_config`) through the library.  Every rank writes
``OUT_DIR/written-by-rank<R>.json``: how many checkpoints it saved, whether it logged, and a
SHA-256 of its model parameters (DDP keeps the ranks' weights identical).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import torch

from calo.config import TrainConfig
from calo.models import CaloGANConfig
from calo.train import CaloTrainingJob
from physml_core.testing import record_writes


def tiny_gan_config(data: str, run_dir: str) -> TrainConfig:
    """A small CaloGAN run: 2 epochs of 5 global batches of 8 showers (the last one 4)."""
    return TrainConfig(model="gan", data=data, run_dir=run_dir, epochs=2, batch_size=8,
                       max_rows=40, device="cpu", tensorboard=False, seed=3,
                       gan=CaloGANConfig(latent_dim=16, d_conv_channels=8,
                                         d_lc_channels=(4, 4, 4), g_dense_channels=4,
                                         g_conv_channels=4, g_lc_channels=2))


def main() -> None:
    out, model = Path(sys.argv[1]), sys.argv[2]
    with record_writes(out) as writes:
        jobs: list[CaloTrainingJob] = []
        real_setup = CaloTrainingJob.setup

        def setup(self: CaloTrainingJob, resume: Any) -> None:
            real_setup(self, resume)
            jobs.append(self)

        CaloTrainingJob.setup = setup  # type: ignore[method-assign]
        if model == "vae":
            from calo.cli import cli

            cli.main(args=["train", "--model", "vae", *sys.argv[3:]], standalone_mode=False)
        else:
            from calo.train import train

            train(tiny_gan_config(*sys.argv[3:5]), progress_bar=False)
        digest = hashlib.sha256()
        for p in jobs[0].model.parameters():
            digest.update(p.detach().cpu().numpy().tobytes())
        writes["parameters_sha256"] = digest.hexdigest()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
