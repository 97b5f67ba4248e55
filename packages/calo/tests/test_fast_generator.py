"""The folded, batch-last inference path of the CaloGAN generator computes the same function as
the layer-by-layer reference (calo.models.fast_generator)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from calo.models import CaloGAN, CaloGANConfig, LocallyConnected2d
from calo.models.calogan import layer_flops
from calo.models.fast_generator import _lc_plan, _lc_run, build_plan


def _generator(latent: int = 48, attention: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    g = CaloGAN(CaloGANConfig(latent_dim=latent, attention=attention)).generator
    with torch.no_grad():  # non-trivial BatchNorm affine parameters and running statistics
        for stream in g.streams:
            stream.bn.weight.uniform_(0.5, 1.5)
            stream.bn.bias.uniform_(-0.3, 0.3)
            stream.bn.running_mean.uniform_(-0.5, 0.5)
            stream.bn.running_var.uniform_(0.2, 2.0)
        if attention:  # attention biases near 0 so both images really mix
            g.attn01.lc.bias.uniform_(-1, 1)
            g.attn12.lc.bias.uniform_(-1, 1)
    return g.eval()


@pytest.mark.parametrize("attention", [True, False])
def test_fast_path_equals_reference(attention):
    g = _generator(attention=attention)
    z, energy = torch.randn(37, 48), torch.rand(37, 1) * 99 + 1
    with torch.no_grad():
        ref = g.forward_reference(z, energy)
        fast = g(z, energy)
    for r, f in zip(ref, fast, strict=True):
        assert f.shape == r.shape and f.is_contiguous()
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-5)
        assert 0.2 < float((r > 0).float().mean()) < 0.8  # the ReLU zeros are exercised
        # Exact zeros agree except where the reference value is within rounding of 0.
        differ = (f > 0) != (r > 0)
        assert bool((r[differ].abs() < 1e-5).all())


def test_sample_showers_uses_fast_path_and_matches_reference():
    g = _generator()
    energy = torch.rand(16, 1) * 99 + 1
    with torch.inference_mode():
        out = g.sample_showers(energy, generator=torch.Generator().manual_seed(3))
    z = torch.randn(16, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = g.forward_reference(z, energy)
    torch.testing.assert_close(out["layer_1"], 1000.0 * ref[1][:, 0], rtol=1e-4, atol=1e-2)
    assert "_plan_cache" in g.__dict__


def test_plan_is_rebuilt_when_weights_change():
    g = _generator()
    z, energy = torch.randn(8, 48), torch.rand(8, 1) * 99 + 1
    with torch.no_grad():
        before = g(z, energy)[0]
        plan = g.inference_plan()
        assert g.inference_plan() is plan  # cached while nothing changes
        g.streams[0].dense.weight.mul_(2.0)  # as an optimizer step would (in place)
        after = g(z, energy)[0]
        assert g.inference_plan() is not plan
        torch.testing.assert_close(after, g.forward_reference(z, energy)[0], rtol=1e-4,
                                   atol=1e-5)
    assert not torch.allclose(before, after)
    # load_state_dict copies in place: the plan follows too.
    other = _generator(seed=1)
    g.load_state_dict(other.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(g(z, energy)[2], other.forward_reference(z, energy)[2],
                                   rtol=1e-4, atol=1e-5)


def test_training_mode_and_gradients_use_the_reference_path():
    g = _generator()
    z, energy = torch.randn(8, 48), torch.rand(8, 1) * 99 + 1
    g.train()
    images = g(z, energy)
    images[1].sum().backward()  # reference path: gradients reach the Dense layer
    assert g.streams[1].dense.weight.grad is not None
    assert "_plan_cache" not in g.__dict__


@pytest.mark.parametrize("cin,cout,size,kernel", [(16, 6, (5, 98), (2, 2)),
                                                  (2, 2, (14, 8), (3, 3))])
def test_batch_last_locally_connected_equals_module(cin, cout, size, kernel):
    torch.manual_seed(0)
    layer = LocallyConnected2d(cin, cout, size, kernel)
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    x = torch.randn(5, cin, *size)
    scale, shift = torch.rand(cin) + 0.5, torch.randn(cin)
    # Straightforward reference: unfold + per-position product, on the affinely mapped input.
    xa = x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    patches = F.unfold(xa, kernel)
    ref = torch.einsum("bkl,lko->bol", patches, layer.weight).reshape(5, cout, *layer.out_size)
    ref = ref + layer.bias
    plan = _lc_plan(layer, size[1], scale, shift)
    flat = _lc_run(x.permute(2, 3, 1, 0).reshape(size[0] * size[1], cin, 5).contiguous(), plan)
    oh, ow = layer.out_size
    flat = F.pad(flat, (0, 0, 0, 0, 0, oh * size[1] - flat.shape[0]))
    out = flat.view(oh, size[1], cout, 5)[:, :ow].permute(3, 2, 0, 1)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_flop_counts_from_layer_shapes():
    g = CaloGAN().generator
    counts = layer_flops(g)
    # Paper architecture: Dense 1024 -> (r+2)(c+2)36 per stream dominates.
    dense = sum(2 * 1024 * (r + 2) * (c + 2) * 36 for r, c in [(3, 96), (12, 12), (12, 6)])
    assert sum(v for k, v in counts.items() if k.endswith("dense")) == dense
    assert 60e6 < counts["total"] < 66e6
    # The folded path executes fewer than half of those FLOPs (Dense + Conv -> one matrix).
    executed = build_plan(g).flops_per_shower()
    assert 0.35 * counts["total"] < executed < 0.5 * counts["total"]
