from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calo.models import (
    CaloGAN,
    CaloGANConfig,
    CaloVAE,
    CaloVAEConfig,
    LocallyConnected2d,
    MinibatchDiscrimination,
    generator_flops_per_shower,
    vae_loss,
)
from calo.models.layers import conv2d_one_channel
from calo.preprocessing import ShowerPreprocessor, flatten_cells, unflatten_cells


@pytest.mark.parametrize("cin,cout,size,kernel,stride", [
    (16, 6, (5, 98), (2, 2), (1, 1)), (64, 16, (14, 14), (3, 3), (1, 2)),
    (8, 8, (15, 9), (2, 2), (1, 2)),
])
def test_locally_connected_equals_unfold_reference(cin, cout, size, kernel, stride):
    torch.manual_seed(0)
    layer = LocallyConnected2d(cin, cout, size, kernel, stride)
    x = torch.randn(3, cin, *size)
    patches = F.unfold(x, kernel, stride=stride)  # (B, K, L)
    ref = torch.einsum("bkl,lko->bol", patches, layer.weight).reshape(3, cout, *layer.out_size)
    torch.testing.assert_close(layer(x), ref + layer.bias, rtol=1e-5, atol=1e-5)
    # No weight sharing: changing one position's kernel changes one output position only.
    with torch.no_grad():
        layer.weight[0].add_(1.0)
    changed = (layer(x) - ref - layer.bias).abs().sum(dim=(0, 1)) > 1e-4
    assert changed.sum() == 1 and changed[0, 0]


def test_minibatch_discrimination_known_answer():
    mbd = MinibatchDiscrimination(4, kernels=3, dims=2)
    x = torch.ones(5, 4)
    # Identical rows: every L1 distance is 0, so each output is tanh(batch size).
    torch.testing.assert_close(mbd(x), torch.full((5, 3), float(np.tanh(5.0))))


def test_minibatch_discrimination_matches_explicit_l1_formula():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(6, kernels=4, dims=3)
    x = torch.randn(7, 6, requires_grad=True)
    m = (x @ mbd.weight).view(7, 4, 3)
    l1 = (m.unsqueeze(3) - m.permute(1, 2, 0).unsqueeze(0)).abs().sum(dim=2)  # (B, K, B)
    expected = torch.tanh(torch.exp(-l1).sum(dim=2))
    got = mbd(x)
    torch.testing.assert_close(got, expected)
    g_got = torch.autograd.grad(got.square().sum(), x)[0]
    g_exp = torch.autograd.grad(expected.square().sum(), x)[0]
    torch.testing.assert_close(g_got, g_exp)


def test_conv2d_one_channel_matches_conv2d():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 5, 2)
    x = torch.randn(3, 1, 4, 7, requires_grad=True)
    got, expected = conv2d_one_channel(x, conv), conv(x)
    torch.testing.assert_close(got, expected)
    grads = [torch.autograd.grad(y.square().sum(), [x, conv.weight]) for y in (got, expected)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="1-channel"):
        conv2d_one_channel(torch.zeros(1, 2, 3, 3), torch.nn.Conv2d(2, 1, 2))


def test_calogan_sizes_are_configurable_and_fast_path_matches():
    cfg = CaloGANConfig(latent_dim=8, g_dense_channels=5, g_conv_channels=4, g_lc_channels=3,
                        d_conv_channels=6, d_lc_channels=(4, 3, 2))
    gan = CaloGAN(cfg).eval()
    z, energy = torch.randn(3, 8), torch.tensor([[2.0], [30.0], [90.0]])
    with torch.no_grad():
        fast = gan.generator(z, energy)
        ref = gan.generator.forward_reference(z, energy)
        logit, total, _ = gan.discriminator(ref, energy)
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert logit.shape == (3, 1) and total.shape == (3, 1)
    assert gan.discriminator.streams[0].conv.out_channels == 6
    with pytest.raises(ValueError, match="positive"):
        CaloGANConfig(d_lc_channels=(4, 0, 2))


def test_calogan_shapes_zeros_and_flops():
    torch.manual_seed(0)
    cfg = CaloGANConfig(latent_dim=64)
    gan = CaloGAN(cfg)
    energy = torch.tensor([[5.0], [50.0], [90.0], [20.0]])
    with torch.no_grad():
        images = gan.generator(torch.randn(4, 64), energy)
        logit, total, _ = gan.discriminator(images, energy)
    assert [tuple(i.shape) for i in images] == [(4, 1, 3, 96), (4, 1, 12, 12), (4, 1, 12, 6)]
    assert all(float(i.min()) >= 0.0 for i in images)
    assert any(bool((i == 0).any()) for i in images)  # ReLU gives exact zeros
    assert logit.shape == (4, 1)
    torch.testing.assert_close(total[:, 0], sum(i.flatten(1).sum(1) for i in images))
    gan.eval()
    out = gan.sample_showers(torch.tensor([10.0, 30.0]))
    assert out["layer_0"].shape == (2, 3, 96) and out["energy"].shape == (2, 1)
    # The paper's generator costs about 60 MFLOP per shower.
    assert 50e6 < generator_flops_per_shower() < 70e6


def test_calogan_backward_reaches_both_networks():
    torch.manual_seed(0)
    gan = CaloGAN(CaloGANConfig(latent_dim=16))
    energy = torch.rand(6, 1) * 99 + 1
    logit, total, _ = gan.discriminator(gan.generator(torch.randn(6, 16), energy), energy)
    (logit.mean() + 0.05 * (total - energy).abs().mean()).backward()
    assert gan.generator.streams[0].dense.weight.grad is not None
    assert gan.discriminator.out.weight.grad is not None


def test_preprocessing_roundtrip_is_exact_and_state_restores(showers):
    prep = ShowerPreprocessor().fit([{k: v[:1000] for k, v in showers.items()}])
    cells = torch.from_numpy(flatten_cells(showers)[:50])
    energy = torch.from_numpy(showers["energy"][:50])
    w, m = prep.forward(cells, energy)
    back = prep.inverse(w, m, energy)
    torch.testing.assert_close(back, cells, rtol=1e-4, atol=1e-3)
    assert torch.equal(back == 0, cells == 0)
    inplace = prep.inverse(w.clone(), m, energy, inplace=True)
    torch.testing.assert_close(inplace, back, rtol=1e-5, atol=1e-4)
    assert torch.equal(inplace == 0, cells == 0)
    clone = ShowerPreprocessor.from_state_dict(prep.state_dict())
    torch.testing.assert_close(clone.inverse(w, m, energy), back)
    layers = unflatten_cells(cells.numpy())
    np.testing.assert_array_equal(layers["layer_2"], showers["layer_2"][:50])


def test_vae_loss_backward_and_exact_zero_sampling(showers):
    torch.manual_seed(0)
    prep = ShowerPreprocessor().fit([{k: v[:500] for k, v in showers.items()}])
    vae = CaloVAE(CaloVAEConfig(latent_dim=8, hidden=(64, 32)), prep)
    cells = torch.from_numpy(flatten_cells(showers)[:32])
    energy = torch.from_numpy(showers["energy"][:32])
    w, m = prep.forward(cells, energy)
    losses = vae_loss(vae, w, m, prep.condition(energy), energy, cells, kl_weight=0.5)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    assert vae.to_cells.weight.grad is not None
    vae.eval()
    out = vae.sample_showers(torch.tensor([10.0, 60.0]))
    flat = flatten_cells(out)
    assert flat.shape == (2, 504) and float(flat.min()) >= 0.0
    assert int((flat == 0).sum()) > 0  # empty cells are exact zeros


def test_energy_head_targets_and_rescaling_known_answer():
    from calo.models.vae import _rescale_total, energy_targets

    cells = torch.zeros(1, 504)
    cells[0, 0] = 3000.0  # layer 0
    cells[0, 300] = 6000.0  # layer 1
    cells[0, 450] = 10.0  # layer 2
    energy = torch.tensor([[10.0]])
    target = energy_targets(cells, energy)
    assert target[0, 0] == pytest.approx((0.901 - 1.0) / 0.01, rel=1e-4)
    assert target[0, 1] == pytest.approx(float(np.log(0.5)), rel=1e-4)  # logit(1/3)
    # Ask for E_tot / E_inc = 0.99: every cell scales by one factor, shares unchanged.
    out = _rescale_total(cells, energy, torch.tensor([-1.0]))
    assert float(out.sum()) == pytest.approx(9900.0, rel=1e-5)
    torch.testing.assert_close(out / out.sum(), cells / cells.sum())
    assert int((out == 0).sum()) == 501
    empty = _rescale_total(torch.zeros(1, 504), energy, torch.tensor([0.5]))
    assert not empty.any()  # an empty shower stays empty


def test_calogan_initialisers_and_attention_bias_follow_the_original():
    torch.manual_seed(0)
    gan = CaloGAN(CaloGANConfig(latent_dim=16, d_conv_channels=8))
    g, d = gan.generator, gan.discriminator
    # In-painting attention: bias 0 on the primary channel, -10 on the carry-over channel only.
    for attn in (g.attn01, g.attn12):
        assert torch.all(attn.lc.bias[0] == 0) and torch.all(attn.lc.bias[1] == -10.0)
    stream = g.streams[1]
    # Keras: zero biases; Dense glorot_uniform; the generator's Conv2D he_uniform.
    assert not stream.dense.bias.any() and not stream.conv.bias.any() and not d.out.bias.any()
    fan_in, fan_out = stream.dense.in_features, stream.dense.out_features
    assert stream.dense.weight.abs().max() <= np.sqrt(6.0 / (fan_in + fan_out))
    assert stream.conv.weight.abs().max() <= np.sqrt(6.0 / (stream.conv.in_channels * 4))
    assert stream.conv.weight.abs().max() > np.sqrt(3.0 / (stream.conv.in_channels * 4))


def test_gan_step_makes_two_discriminator_and_two_generator_adam_steps():
    from calo.train import TrainConfig, _GanTrainer

    torch.manual_seed(0)
    cfg = TrainConfig(model="gan", data="x.h5", batch_size=4,
                      gan=CaloGANConfig(latent_dim=16, d_conv_channels=8))
    gan = CaloGAN(cfg.gan)
    trainer = _GanTrainer(gan, cfg, torch.device("cpu"), (1.0, 100.0))
    batch = {"energy": torch.full((4, 1), 50.0),
             **{k: torch.rand(4, *s) for k, s in (("layer_0", (3, 96)), ("layer_1", (12, 12)),
                                                  ("layer_2", (12, 6)))}}
    trainer.step(batch)

    def adam_steps(opt: torch.optim.Optimizer) -> int:
        return int(next(iter(opt.state.values()))["step"])

    assert adam_steps(trainer.opt["discriminator"]) == 2  # all-real batch, then all-fake batch
    assert adam_steps(trainer.opt["generator"]) == 2


def test_glorot_normal_is_keras_truncated_normal():
    # Keras (>= 2.2, tf.keras) glorot_normal: a normal of scale s = sqrt(2 / (fan_in + fan_out))
    # / 0.8796... truncated at +-2 s, whose draws have standard deviation sqrt(2 / (fan_in +
    # fan_out)).  The generator's last locally connected layer uses it.
    from calo.models.layers import TRUNCATED_NORMAL_SD, keras_glorot_normal_

    # the standard deviation of a unit normal truncated at +-2, from its density
    x = np.linspace(-2.0, 2.0, 400_001)
    pdf = np.exp(-0.5 * x**2)
    assert np.sqrt(np.trapezoid(x**2 * pdf, x) / np.trapezoid(pdf, x)) == pytest.approx(
        TRUNCATED_NORMAL_SD, abs=1e-9)
    torch.manual_seed(0)
    layer = LocallyConnected2d(6, 1, (13, 7), (2, 2), bias=False, init="glorot_normal")
    w = keras_glorot_normal_(torch.empty(200_000), 24, 1)
    sd = np.sqrt(2.0 / 25.0)
    for weights in (layer.weight, w):
        assert weights.abs().max() <= 2.0 * sd / TRUNCATED_NORMAL_SD
    assert float(w.std()) == pytest.approx(sd, rel=0.01)
    # the share beyond 2 sd is the truncated normal's (3.5 %), not a plain normal's (4.6 %)
    erf = np.vectorize(math.erf)
    beyond = float((erf(np.sqrt(2.0)) - erf(np.sqrt(2.0) * TRUNCATED_NORMAL_SD))
                   / erf(np.sqrt(2.0)))
    assert float((w.abs() > 2.0 * sd).float().mean()) == pytest.approx(beyond, abs=0.002)
