"""Data-parallel helpers of the clarm trainers: shares of a global batch, global batch norm.

Under ``torchrun`` every rank draws the same global batch (same seed, same permutation, same
noise) and takes the rows ``rank::world_size`` of it.  Two things make the result equal to one
process training on the whole global batch (to float precision):

* losses are scaled so that DDP's mean of the per-rank gradients is the gradient of the mean
  over the global batch (:func:`share_weight`), whatever the shares' sizes;
* batch normalisation uses the statistics of the global batch (:class:`GlobalBatchNorm`):
  torch's ``SyncBatchNorm`` runs on GPUs only, this one on any device and backend (Gloo on
  the CPU included).
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import nn as dist_nn

from physml_core.distributed import DistContext

__all__ = ["GlobalBatchNorm", "rank_rows", "share_weight", "use_global_batch_norm"]


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
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
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
