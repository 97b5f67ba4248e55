"""Model equations, shapes, masks, seeds and bad input for the Alternator and the baselines."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alternators.models import (
    MODEL_NAMES,
    VRNN,
    AlphaSchedule,
    Alternator,
    ModelConfig,
    RNNModel,
    build_model,
)

DX, DZ = 6, 3


def _x(n=4, t=12, seed=0):
    return torch.randn(n, t, DX, generator=torch.Generator().manual_seed(seed))


def _model(name, **kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(name=name, hidden=16, layers=2, **kw), DX, DZ)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes_of_every_mode(name):
    model = _model(name)
    x = _x()
    decoded = model.decode(x, n_samples=5)
    assert decoded.x_samples.shape == (5, 4, 12, DX)
    assert decoded.z_samples.shape == (5, 4, 12, DZ)
    assert decoded.x_pred.shape == (5, 4, 12, DX)
    assert decoded.z_mean.shape == (4, 12, DZ)
    fc = model.forecast(x[:, :8], horizon=6, n_samples=3)
    assert fc.x_samples.shape == (3, 4, 14, DX)
    torch.testing.assert_close(fc.x_samples[:, :, :8], x[:, :8].expand(3, 4, 8, DX))
    sampled = model.sample(2, 9, n_samples=2)
    assert sampled.z_samples.shape == (2, 2, 9, DZ)
    if name == "mlp":  # the floor has no dynamics: no forecast beyond climatology
        torch.testing.assert_close(fc.x_pred, torch.zeros_like(fc.x_pred))
    parts = model.loss(x, torch.randn(4, 12, DZ))
    assert parts["loss"].ndim == 0 and torch.isfinite(parts["loss"])
    parts["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_alternator_coefficients_follow_the_reference():
    model = Alternator(DX, DZ, sigma_x=0.2, alpha=0.7, hidden=8, layers=1)
    assert math.isclose(model.sigma_z, 0.7 * 0.2)  # reference default sigma_z = alpha sigma_x
    c = model.coefficients(5)
    assert math.isclose(float(c["obs_scale"]), math.sqrt(1 - 0.04))
    torch.testing.assert_close(c["state_gain"], torch.full((5,), math.sqrt(0.7), dtype=torch.float64))
    torch.testing.assert_close(c["memory"],
                               torch.full((5,), math.sqrt(1 - 0.7 - 0.14**2), dtype=torch.float64))


def test_alpha_schedules():
    lin = AlphaSchedule("linear", 0.9, 0.5, steps=5)(7)
    torch.testing.assert_close(lin, torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5],
                                                 dtype=torch.float64))
    cos = AlphaSchedule("cosine", 0.9, 0.5, steps=3)(3)
    torch.testing.assert_close(cos, torch.tensor([0.9, 0.7, 0.5], dtype=torch.float64))
    model = Alternator(DX, DZ, alpha=AlphaSchedule("linear", 0.9, 0.5, steps=5), sigma_z=0.1,
                       hidden=8, layers=1)
    torch.testing.assert_close(model.coefficients(7)["state_gain"], lin.sqrt())


@pytest.mark.parametrize("kwargs", [
    {"sigma_x": 1.0}, {"sigma_x": -0.1}, {"alpha": 0.0}, {"alpha": 1.2},
    {"alpha": 0.95, "sigma_z": 0.5},
])
def test_invalid_coefficients_are_refused(kwargs):
    with pytest.raises(ValueError):
        Alternator(DX, DZ, hidden=8, layers=1, **kwargs)


class _Affine(nn.Module):
    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, v):
        return self.scale * v + self.shift


def test_recursion_is_exactly_the_reference_equation():
    """Observed steps: z_t = sqrt(a) g(x_t) + sqrt(1 - a - sz^2) z_{t-1} with no noise and
    z before the first step 0; x_hat_t = sqrt(1 - sx^2) f(z_{t-1}), with f and g known maps."""
    d = 2
    sx, a, sz = 0.3, 0.6, 0.2
    model = Alternator(d, d, sigma_x=sx, alpha=a, sigma_z=sz, obs_net=_Affine(2.0, 0.5),
                       state_net=_Affine(-1.0, 0.25))
    x = _x(3, 5)[..., :d]
    pred = model.run(x, generator=torch.Generator().manual_seed(7))
    z = torch.zeros(3, d)
    for t in range(5):
        x_hat = math.sqrt(1 - sx**2) * (2.0 * z + 0.5)
        torch.testing.assert_close(pred.x_pred[0, :, t], x_hat)
        z = math.sqrt(a) * (-x[:, t] + 0.25) + math.sqrt(1 - a - sz**2) * z
        torch.testing.assert_close(pred.z_samples[0, :, t], z)


def test_free_running_recursion_draws_the_noise_of_the_equations():
    """Missing steps: z_0 ~ N(0, I), x_t = x_hat_t + sx eps_x, and
    z_t = sqrt(a) g(x_t) + sqrt(1 - a - sz^2) z_{t-1} + sz eps_z, with the same noise draws."""
    d = 2
    sx, a, sz = 0.3, 0.6, 0.2
    model = Alternator(d, d, sigma_x=sx, alpha=a, sigma_z=sz, obs_net=_Affine(2.0, 0.5),
                       state_net=_Affine(-1.0, 0.25))
    pred = model.run(torch.zeros(3, 5, d), torch.zeros(5, dtype=torch.bool),
                     generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(3, d, generator=gen)
    for t in range(5):
        x_hat = math.sqrt(1 - sx**2) * (2.0 * z + 0.5)
        torch.testing.assert_close(pred.x_pred[0, :, t], x_hat)
        x_t = x_hat + sx * torch.randn(3, d, generator=gen)
        torch.testing.assert_close(pred.x_samples[0, :, t], x_t)
        z = (math.sqrt(a) * (-x_t + 0.25) + math.sqrt(1 - a - sz**2) * z
             + sz * torch.randn(3, d, generator=gen))
        torch.testing.assert_close(pred.z_samples[0, :, t], z)


def test_vectorised_and_looped_paths_agree():
    model = _model("alternator")
    x = _x()
    fast = model._run(x, None, torch.Generator().manual_seed(1))
    loop = model._run(x, torch.ones(4, 12, DX, dtype=torch.bool),
                      torch.Generator().manual_seed(1))
    for a, b in zip(fast, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_observation_noise_uses_sigma_x():
    """Free-running observations scatter around x_hat with standard deviation sigma_x."""
    model = Alternator(DX, DZ, sigma_x=0.3, alpha=0.5, hidden=8, layers=1)
    pred = model.sample(256, 3, generator=torch.Generator().manual_seed(0))
    resid = pred.x_samples - pred.x_pred
    assert abs(resid.std().item() - 0.3) < 0.02


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_mask_is_honoured(name):
    model = _model(name)
    x = _x()
    mask = torch.ones(12, dtype=torch.bool)
    mask[4:8] = False
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    full = model.run(x, None, 2, gen())
    masked = model.run(x, mask, 2, gen())
    assert not torch.allclose(full.z_samples[:, :, 4:], masked.z_samples[:, :, 4:])
    # values at missing steps are never read
    x_changed = x.clone()
    x_changed[:, 4:8] = 100.0
    again = model.run(x_changed, mask, 2, gen())
    torch.testing.assert_close(again.z_samples, masked.z_samples)
    # observed steps are kept as given, missing ones are filled by the model
    torch.testing.assert_close(masked.x_samples[:, :, :4], x[:, :4].expand(2, 4, 4, DX))
    assert not torch.allclose(masked.x_samples[:, :, 4:8], x[:, 4:8].expand(2, 4, 4, DX))


@pytest.mark.parametrize("name", ["alternator", "vrnn", "mlp"])
def test_seeds_reproduce_and_differ(name):
    model = _model(name)
    x = _x()
    mask = torch.arange(12) < 6  # forecast: the stochastic part of every model
    a = model.impute(x, mask, 3, torch.Generator().manual_seed(11))
    b = model.impute(x, mask, 3, torch.Generator().manual_seed(11))
    c = model.impute(x, mask, 3, torch.Generator().manual_seed(12))
    torch.testing.assert_close(a.z_samples, b.z_samples)
    assert not torch.allclose(a.z_samples, c.z_samples)
    assert not torch.allclose(a.z_samples[0], a.z_samples[1])  # samples differ from each other


def test_rnn_is_deterministic_and_builds_an_lstm():
    model = _model("rnn")
    pred = model.decode(_x(), 4)
    torch.testing.assert_close(pred.z_samples[0], pred.z_samples[3])
    lstm = RNNModel(DX, DZ, hidden=8, cell="lstm")
    assert isinstance(lstm.rnn, nn.LSTM)
    assert lstm.forecast(_x(), 3, 2).z_samples.shape == (2, 4, 15, DZ)
    with pytest.raises(ValueError, match="cell"):
        RNNModel(DX, DZ, cell="transformer")


def test_conv_body_on_image_observations():
    model = Alternator(2 * 8 * 6, DZ, body="conv", obs_shape=(2, 8, 6), hidden=16)
    x = torch.randn(3, 5, 96)
    assert model.decode(x, 2).z_samples.shape == (2, 3, 5, DZ)
    assert model.sample(2, 4).x_samples.shape == (1, 2, 4, 96)
    model.loss(x, torch.randn(3, 5, DZ))["loss"].backward()
    with pytest.raises(ValueError, match="holds 48 values"):
        Alternator(96, DZ, body="conv", obs_shape=(1, 8, 6))
    with pytest.raises(ValueError, match="obs_shape"):
        Alternator(96, DZ, body="conv")


def test_unsupervised_losses():
    x = _x()
    for name in ("alternator", "vrnn", "rnn"):
        parts = _model(name).loss(x)
        assert "latent_mse" not in parts and torch.isfinite(parts["loss"])
    assert "consistency" not in _model("alternator").loss(x)  # off by default
    assert "consistency" in _model("alternator", consistency_weight=0.1).loss(x)
    with pytest.raises(ValueError, match="needs latents"):
        _model("mlp").loss(x)
    assert "kl" in _model("vrnn").loss(x)


def test_training_reduces_the_supervised_loss():
    torch.manual_seed(0)
    x = _x(8, 20)
    z = torch.tanh(x[..., :DZ].cumsum(1) / 3)  # latents that are a function of the past
    model = Alternator(DX, DZ, hidden=32, layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(x, z)["latent_mse"].item()
    for _ in range(60):
        opt.zero_grad()
        model.loss(x, z)["loss"].backward()
        opt.step()
    assert model.loss(x, z)["latent_mse"].item() < 0.5 * first


@pytest.mark.parametrize(("bad", "message"), [
    (torch.randn(4, 12), "shape"),
    (torch.randn(4, 12, DX + 1), "features"),
    (torch.full((4, 12, DX), float("nan")), "NaN"),
    ([[1.0]], "torch.Tensor"),
])
def test_bad_observations(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _model("alternator").decode(bad)


@pytest.mark.parametrize("mask", [torch.ones(11, dtype=torch.bool),
                                  torch.ones(4, 13, dtype=torch.bool),
                                  torch.ones(4, 12, DX + 1, dtype=torch.bool)])
def test_mask_of_wrong_length(mask):
    with pytest.raises(ValueError, match="mask"):
        _model("vrnn").impute(_x(), mask)


def test_model_factory_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown model"):
        ModelConfig(name="transformer")
    assert isinstance(_model("vrnn"), VRNN)
