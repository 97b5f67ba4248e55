"""The paper's objective (vertaix/Alternators, Alt.py): known-answer loss, noise-free decoding,
masked entries kept out of the loss, and the reference's self-attention body."""

from __future__ import annotations

import math

import pytest
import torch

from alternators.models import MODEL_NAMES, Alternator, ModelConfig, build_model

DX, DZ = 5, 3


def _batch(seed=0, n=3, t=7):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, DX, generator=gen), torch.randn(n, t, DZ, generator=gen)


@pytest.mark.parametrize("body", ["mlp", "attention"])
@pytest.mark.parametrize(("sigma_x", "alpha"), [(0.2, 0.7), (0.1, 0.3)])
def test_loss_equals_the_reference_formula(body, sigma_x, alpha):
    """L = b sigma_x^2 MSE(z, z_hat) + a sigma_z^2 MSE(x_hat, x), sigma_z = alpha sigma_x,
    a = b = 1, with x_hat_t = sqrt(1 - sigma_x^2) f(z_{t-1}) and the noise-free latent
    recursion z_t = sqrt(alpha) g(x_t) + sqrt(1 - alpha - sigma_z^2) z_{t-1}, z before the
    first step 0 (computed here step by step, in the reference's (T, B, D) layout)."""
    torch.manual_seed(1)
    model = Alternator(DX, DZ, sigma_x=sigma_x, alpha=alpha, body=body, hidden=16,
                       layers=2).eval()
    x, z = _batch()
    sigma_z = alpha * sigma_x
    xt, zt = x.transpose(0, 1), z.transpose(0, 1)  # (T, B, D)
    z_prev = torch.zeros(x.shape[0], DZ)
    x_hats, z_hats = [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            x_hats.append(math.sqrt(1 - sigma_x**2) * model.obs_net(z_prev))
            z_prev = (math.sqrt(alpha) * model.state_net(xt[t])
                      + math.sqrt(1 - alpha - sigma_z**2) * z_prev)
            z_hats.append(z_prev)
        l_obs = ((torch.stack(x_hats) - xt) ** 2).mean() * sigma_z**2
        l_lat = ((torch.stack(z_hats) - zt) ** 2).mean() * sigma_x**2
        expected = 1.0 * l_lat + 1.0 * l_obs
        parts = model.loss(x, z)
    torch.testing.assert_close(parts["loss"], expected, rtol=1e-5, atol=1e-7)
    # the balance follows alpha and sigma_x; "plain" drops the sigma factors (ablation)
    plain = Alternator(DX, DZ, sigma_x=sigma_x, alpha=alpha, body=body, hidden=16, layers=2,
                       loss_weighting="plain")
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        p = plain.eval().loss(x, z)
    torch.testing.assert_close(p["loss"], l_lat / sigma_x**2 + l_obs / sigma_z**2,
                               rtol=1e-5, atol=1e-7)


def test_weights_and_objective_options_are_checked():
    with pytest.raises(ValueError, match="sigma_x\\^2"):
        Alternator(DX, DZ, sigma_x=0.0)
    with pytest.raises(ValueError, match="loss_weighting"):
        Alternator(DX, DZ, loss_weighting="elbo")
    assert Alternator(DX, DZ, sigma_x=0.0, loss_weighting="plain").sigma_z == 0.0


@pytest.mark.parametrize("body", ["mlp", "attention"])
def test_decoding_with_every_step_observed_is_deterministic(body):
    model = Alternator(DX, DZ, body=body, hidden=16, layers=2).eval()
    x, _ = _batch()
    a = model.decode(x, 4, torch.Generator().manual_seed(0))
    b = model.decode(x, 4, torch.Generator().manual_seed(99))
    torch.testing.assert_close(a.z_samples, b.z_samples, rtol=0, atol=0)
    torch.testing.assert_close(a.z_samples[0], a.z_samples[3], rtol=0, atol=0)
    # ... whereas steps with a missing value are sampled
    mask = torch.ones(3, 7, DX, dtype=torch.bool)
    mask[:, 4:, 1] = False
    c = model.impute(x, mask, 2, torch.Generator().manual_seed(0))
    torch.testing.assert_close(c.z_samples[0, :, :4], a.z_samples[0, :, :4])
    assert not torch.allclose(c.z_samples[0, :, 4:], c.z_samples[1, :, 4:])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_masked_entries_do_not_change_the_training_loss(name):
    torch.manual_seed(2)
    model = build_model(ModelConfig(name=name, hidden=16, layers=2), DX, DZ).eval()
    x, z = _batch(3)
    mask = torch.rand(3, 7, DX, generator=torch.Generator().manual_seed(4)) > 0.3
    mask[:, 2] = False  # and one step with nothing observed
    z_mask = torch.ones(3, 7, DZ, dtype=torch.bool)
    z_mask[0, 5:] = False
    torch.manual_seed(5)
    base = model.loss(x, z, mask, z_mask)
    grads = torch.autograd.grad(base["loss"], list(model.parameters()), allow_unused=True)
    x2 = torch.where(mask, x, torch.full_like(x, float("nan")))
    z2 = torch.where(z_mask, z, torch.full_like(z, 1e3))
    torch.manual_seed(5)
    other = model.loss(x2, z2, mask, z_mask)
    grads2 = torch.autograd.grad(other["loss"], list(model.parameters()), allow_unused=True)
    for key in base:
        torch.testing.assert_close(other[key], base[key])
    for g1, g2 in zip(grads, grads2, strict=True):
        if g1 is not None:
            torch.testing.assert_close(g1, g2)
    # the observed values do matter
    x3 = x + 0.5 * mask
    torch.manual_seed(5)
    assert not torch.allclose(model.loss(x3, z, mask, z_mask)["loss"], base["loss"])


def test_the_reference_attention_body_has_the_reference_size():
    """Alt.py on the reference Lorenz data (83 kept neurons x 2 history steps -> Dx = 166):
    321,833 parameters, as the public code reports."""
    model = Alternator(166, 3, body="attention", layers=3)
    assert sum(p.numel() for p in model.parameters()) == 321_833
    assert all(p.abs().max() <= 0.05 for p in model.parameters())  # uniform(-0.05, 0.05) init
