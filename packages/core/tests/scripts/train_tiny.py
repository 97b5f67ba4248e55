"""A tiny regression job written the way physml training loops are: it runs unchanged as
``python train_tiny.py RUN_DIR`` and ``torchrun --nproc-per-node 2 train_tiny.py RUN_DIR``,
logs on rank 0, checkpoints every epoch and resumes from the latest checkpoint.

``--die-after-epoch K`` kills the process (SIGKILL, no clean-up) right after epoch K's
checkpoint, to test resumption.
"""

from __future__ import annotations

import argparse
import json
import os
import signal

import torch
from torch.utils.data import DataLoader, TensorDataset

from physml_core import RunLogger, latest, load_checkpoint, save_checkpoint, seed_everything
from physml_core.checkpoint import checkpoint_path
from physml_core.distributed import (
    all_reduce_mean,
    barrier,
    distributed_sampler,
    init_distributed,
    shutdown,
    unwrap_model,
    wrap_model,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--die-after-epoch", type=int, default=-1)
    args = parser.parse_args()

    ctx = init_distributed("cpu")
    seed_everything(1234 + ctx.rank)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, generator=generator)
    y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3
    dataset = TensorDataset(x, y)
    sampler = distributed_sampler(dataset, ctx, shuffle=True, seed=0)
    shuffle_rng = torch.Generator()  # reseeded per epoch, so a resumed run shuffles the same
    loader = DataLoader(dataset, batch_size=32, sampler=sampler, shuffle=sampler is None,
                        generator=shuffle_rng)
    model = wrap_model(torch.nn.Linear(3, 1), ctx)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    config = {"epochs": args.epochs, "world_size": ctx.world_size}

    start_epoch = 0
    found = latest(args.run_dir)
    if found is not None:
        ckpt = load_checkpoint(found, package="physml-core", model_name="tiny")
        ckpt.restore(model=unwrap_model(model), optimizer=optimizer, rng=ctx.world_size == 1)
        start_epoch = ckpt.step

    with RunLogger(args.run_dir, config=config, enabled=ctx.is_main) as log:
        for epoch in range(start_epoch, args.epochs):
            shuffle_rng.manual_seed(epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            total = 0.0
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(xb), yb)
                loss.backward()
                optimizer.step()
                total += float(loss)
            mean_loss = all_reduce_mean(total / len(loader), ctx)
            log.log_scalars(epoch + 1, {"loss": mean_loss})
            if ctx.is_main:
                save_checkpoint(checkpoint_path(args.run_dir, epoch + 1), package="physml-core",
                                model_name="tiny", model=unwrap_model(model),
                                optimizer=optimizer, step=epoch + 1, config=config)
            barrier(ctx)
            if epoch + 1 == args.die_after_epoch:
                os.kill(os.getpid(), signal.SIGKILL)

    if ctx.is_main:
        weights = unwrap_model(model).weight.detach().flatten().tolist()
        print(json.dumps({"world_size": ctx.world_size, "weights": weights,
                          "bias": float(unwrap_model(model).bias)}))
    shutdown(ctx)


if __name__ == "__main__":
    main()
