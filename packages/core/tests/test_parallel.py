"""physml_core.parallel in one process (the two-process behaviour is tested through the calo
and clarm trainers under torchrun)."""

from __future__ import annotations

import torch
from torch import nn

from physml_core.distributed import DistContext
from physml_core.parallel import (
    GlobalBatchNorm,
    gather_rows,
    rank_rows,
    share_weight,
    use_global_batch_norm,
    world_size,
)


def test_one_process_is_plain_batch_norm_with_the_same_state_dict():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(4)))
    converted = use_global_batch_norm(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3),
                                                    nn.Sequential(nn.BatchNorm1d(4))))
    converted.load_state_dict(plain.state_dict())
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[2][0],
                                                                    GlobalBatchNorm)
    x = torch.randn(5, 2, 6, 6)
    assert torch.equal(plain[:2](x), converted[:2](x))
    assert torch.equal(plain[1].running_var, converted[1].running_var)


def test_rows_and_weights_of_a_global_batch():
    ctx0, ctx1 = DistContext(rank=0, world_size=2), DistContext(rank=1, world_size=2)
    rows = list(range(7))
    assert rows[rank_rows(7, ctx0)] == [0, 2, 4, 6] and rows[rank_rows(7, ctx1)] == [1, 3, 5]
    # mean over ranks of the weighted local means is the global mean
    local_means = [sum(rows[rank_rows(7, c)]) / len(rows[rank_rows(7, c)]) for c in (ctx0, ctx1)]
    weights = [share_weight(len(rows[rank_rows(7, c)]), 7, c) for c in (ctx0, ctx1)]
    assert sum(m * w for m, w in zip(local_means, weights, strict=True)) / 2 == sum(rows) / 7
    x = torch.randn(3, 2)
    assert world_size() == 1 and gather_rows(x) is x
