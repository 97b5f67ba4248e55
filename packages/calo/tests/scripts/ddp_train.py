"""``calo train`` under torchrun, instrumented for tests/test_distributed.py.

``python ddp_train.py OUT_DIR DATA VAE_RUN_DIR GAN_RUN_DIR [calo train options]`` trains, in
the same processes one after the other, a VAE through the ``calo train`` command line
(``calo.cli``, as ``torchrun ... --no-python calo train`` does) with the given options, a
tiny CaloGAN (:func:`tiny_gan_config`) through the library and, when ``OUT_DIR/gamma.h5``
exists, the tiny multi-particle CaloGAN on DATA and that file (run folder
``GAN_RUN_DIR-acgan``).  For each model every rank writes
``OUT_DIR/<vae|gan|acgan>/written-by-rank<R>.json``: how many checkpoints it saved, whether it
logged, and a SHA-256 of its model parameters (DDP keeps the ranks' weights identical).  One
launch for all models: starting torch in two fresh processes is most of the cost.
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


def tiny_gan_config(data: str | list[str], run_dir: str) -> TrainConfig:
    """A small CaloGAN run: 2 epochs of 5 global batches of 8 showers (the last one 4); with
    two files the multi-particle CaloGAN (40 rows of each file)."""
    return TrainConfig(model="gan", data=data, run_dir=run_dir, epochs=2, batch_size=8,
                       max_rows=40, device="cpu", tensorboard=False, seed=3,
                       gan=CaloGANConfig(latent_dim=16, d_conv_channels=8,
                                         d_lc_channels=(4, 4, 4), g_dense_channels=4,
                                         g_conv_channels=4, g_lc_channels=2))


def _parameters_sha256(job: CaloTrainingJob) -> str:
    digest = hashlib.sha256()
    for p in job.model.parameters():
        digest.update(p.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    out, data, vae_dir, gan_dir = (Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])
    jobs: list[CaloTrainingJob] = []
    real_setup = CaloTrainingJob.setup

    def setup(self: CaloTrainingJob, resume: Any) -> None:
        real_setup(self, resume)
        jobs.append(self)

    CaloTrainingJob.setup = setup  # type: ignore[method-assign]
    from calo.cli import cli
    from calo.train import train

    with record_writes(out / "vae") as writes:
        cli.main(args=["train", "--model", "vae", "--data", data, "--run-dir", vae_dir,
                       *sys.argv[5:]], standalone_mode=False)
        writes["parameters_sha256"] = _parameters_sha256(jobs[-1])
    with record_writes(out / "gan") as writes:
        train(tiny_gan_config(data, gan_dir), progress_bar=False)
        writes["parameters_sha256"] = _parameters_sha256(jobs[-1])
    gamma = out / "gamma.h5"
    if gamma.exists():
        with record_writes(out / "acgan") as writes:
            train(tiny_gan_config([data, str(gamma)], gan_dir + "-acgan"), progress_bar=False)
            writes["parameters_sha256"] = _parameters_sha256(jobs[-1])
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
