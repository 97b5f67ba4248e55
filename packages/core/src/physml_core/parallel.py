"""Data-parallel pieces shared by the trainers: shares of a global batch, collectives with
gradients, global batch norm.

Under ``torchrun`` every rank draws the same global batch (same seed, same permutation, same
noise) and takes the rows ``rank::world_size`` of it (:func:`rank_rows`).  Three things make
the result equal to one process training on the whole global batch (to float precision):

* losses are scaled so that DDP's mean of the per-rank gradients is the gradient of the mean
  over the global batch (:func:`share_weight`), whatever the shares' sizes;
* batch normalisation uses the statistics of the global batch (:class:`GlobalBatchNorm`,
  :func:`use_global_batch_norm`): torch's ``SyncBatchNorm`` runs on GPUs only (it raises
  ``ValueError`` for CPU tensors), this one on any device and backend, Gloo included;
* layers that compare the rows of a batch (minibatch discrimination) see every rank's rows
  through :func:`gather_rows`, whose gradient flows back to the rank that owns each row.

Outside an initialised process group of more than one rank all of these are the plain
one-process operations.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import nn as dist_nn

from .distributed import DistContext

__all__ = ["GlobalBatchNorm", "gather_rows", "rank_rows", "share_weight",
           "use_global_batch_norm", "world_size"]


def world_size() -> int:
    """Processes in the initialised process group (1 when there is none)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

def rank_rows(batch: int, ctx: DistContext) -> slice:
    """This rank's rows ``rank::world_size`` of a global batch of ``batch`` rows."""
    return slice(ctx.rank, batch, ctx.world_size)


def share_weight(local: int, batch: int, ctx: DistContext) -> float:
    """Factor for a rank's batch-mean loss over ``local`` of the ``batch`` global rows, so that
    the mean over ranks of the scaled losses is the global batch mean."""
    return local * ctx.world_size / batch


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all ranks (any number of dimensions).

    Same parameters and buffers as ``nn.BatchNorm1d/2d``, so state dicts are interchangeable.
    In training mode under an initialised process group of more than one rank, the per-channel
    sums (float64) are all-reduced with a differentiable all-reduce; otherwise it is plain
    batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        c = input.shape[1]
        dims = [0, *range(2, input.dim())]
        x = input.double()
        count = x.new_full((1,), float(input.numel() // c))
        with warnings.catch_warnings():
            # torch 2.x deprecates it for the functional collectives, whose all_reduce has no
            # autograd; this one differentiates through the sum
            warnings.simplefilter("ignore", FutureWarning)
            stats = dist_nn.functional.all_reduce(
                torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None \
                and self.running_var is not None and self.num_batches_tracked is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                unbiased = var * n / (n - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean))
                self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var))
        shape = [1, c] + [1] * (input.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        out = out.to(input.dtype)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def use_global_batch_norm(model: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm*`` inside ``model`` by :class:`GlobalBatchNorm` (in place,
    keeping parameters and buffers; call it before moving the model to its device); returns
    ``model``."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and \
                not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, eps=child.eps, momentum=child.momentum,
                                  affine=child.affine,
                                  track_running_stats=child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(device=child.weight.device if child.affine else None)
            new.train(child.training)
            setattr(model, name, new)
        else:
            use_global_batch_norm(child)
    return model


class _GatherRows(torch.autograd.Function):
    """Rows (B_r, ...) of every process concatenated in rank order, (sum_r B_r, ...); the
    gradient of the whole is summed over processes and this process's rows returned."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        count = torch.tensor([x.shape[0]], device=x.device)
        counts = [torch.zeros_like(count) for _ in range(world)]
        dist.all_gather(counts, count)
        sizes = [int(c.item()) for c in counts]
        padded = x.new_zeros((max(sizes), *x.shape[1:]))
        padded[:x.shape[0]] = x.detach()
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        rank = dist.get_rank()
        ctx.lo = sum(sizes[:rank])
        ctx.hi = ctx.lo + sizes[rank]
        return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.detach().contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.lo:ctx.hi]


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows (B_r, ...) of every rank concatenated in rank order, (sum_r B_r, ...), with the
    gradient of each row returned to its rank; ``x`` itself in one process."""
    if world_size() == 1:
        return x
    out: torch.Tensor = _GatherRows.apply(x)
    return out
