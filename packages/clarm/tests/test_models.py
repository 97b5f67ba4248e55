"""Model shapes, conditioning, LSTM packing and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clarm.metrics import FRECHET_RIDGE, mse_per_channel, ssim_per_channel
from clarm.models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig, cvae_loss


@pytest.mark.parametrize("resolution,stages", [(32, 2), (64, 3), (128, 4), (256, 5)])
def test_depth_scales_with_resolution(resolution, stages):
    cfg = CVAEConfig(resolution=resolution, modules=4, base_filters=4)
    assert cfg.stages == stages
    if resolution <= 64:
        model = CVAE(cfg).eval()
        x = torch.rand(2, 15, resolution, resolution)
        out = model(x, torch.tensor([0, 3]))
        assert out["logits"].shape == x.shape
        assert out["mu"].shape == (2, 8)
        loss, _rec, kl = cvae_loss(out, x)
        assert torch.isfinite(loss) and kl >= -1e-4


def test_decoder_conditioning_matters():
    torch.manual_seed(0)
    cond = CVAE(CVAEConfig(resolution=32, modules=4, base_filters=4)).eval()
    plain = CVAE(CVAEConfig(resolution=32, modules=4, base_filters=4, cond_decoder=False,
                            prior="standard")).eval()
    z = torch.zeros(2, 8)
    c = cond.condition(torch.tensor([0, 3]))
    a = cond.decode(z, c)
    assert not torch.allclose(a[0], a[1])  # same z, different module -> different image
    b = plain.decode(z, plain.condition(torch.tensor([0, 3])))
    assert torch.allclose(b[0], b[1])
    mu, logvar = plain.prior(c)
    assert torch.all(mu == 0) and torch.all(logvar == 0)


def test_condition_rejects_bad_module_index():
    model = CVAE(CVAEConfig(resolution=32, modules=4, base_filters=4))
    with pytest.raises(ValueError, match="out of range"):
        model.condition(torch.tensor([4]))
    with pytest.raises(TypeError):
        model.condition(torch.tensor([1.0]))
    with pytest.raises(ValueError):
        CVAEConfig(resolution=48).validate()


def test_lstm_reads_last_real_step_not_padding():
    torch.manual_seed(0)
    model = LatentLSTM(LSTMConfig(latent_dim=3, hidden=8, modules=6)).eval()
    seq = torch.randn(1, 3, 3)
    padded = torch.cat([seq, torch.full((1, 2, 3), 9.0)], dim=1)
    short = model(seq, torch.tensor([3]))
    long = model(padded, torch.tensor([3]))
    torch.testing.assert_close(short, long)
    # a batch of different lengths gives each sequence its own answer
    batch = torch.cat([padded, torch.randn(1, 5, 3)])
    out = model(batch, torch.tensor([3, 5]))
    torch.testing.assert_close(out[0], short[0])
    roll = model.rollout(seq, 6)
    assert roll.shape == (1, 6, 3)
    torch.testing.assert_close(roll[:, :3], seq)
    with pytest.raises(ValueError):
        model.rollout(seq, 2)


def test_metrics_known_answers():
    rng = np.random.default_rng(0)
    a = torch.as_tensor(rng.random((2, 15, 32, 32)), dtype=torch.float32)
    assert torch.allclose(ssim_per_channel(a, a), torch.ones(2, 15), atol=1e-5)
    noisy = (a + 0.3 * torch.as_tensor(rng.standard_normal(a.shape), dtype=torch.float32))
    # independent noise of variance 0.09 on a signal of variance 1/12: structure term
    # 2 var_a / (2 var_a + 0.09) = 0.65
    assert float(ssim_per_channel(a, noisy).mean()) == pytest.approx(0.65, abs=0.04)
    assert float(ssim_per_channel(a, 1.0 - a).mean()) < -0.9  # anti-correlated
    assert torch.allclose(mse_per_channel(a, a + 0.1), torch.full((2, 15), 0.01), atol=1e-6)
    with pytest.raises(ValueError):
        ssim_per_channel(a, a[:1])


def test_frechet_distance_is_cores_with_clarms_ridge():
    """clarm scores generation with core's Frechet distance; ``ridge=FRECHET_RIDGE`` gives
    exactly the figures of clarm's former implementation (1e-6 on both covariance diagonals,
    written out here as the reference)."""
    from scipy import linalg

    from physml_core.stats import frechet_distance

    rng = np.random.default_rng(0)
    feats = rng.standard_normal((500, 4))
    assert frechet_distance(feats, feats, ridge=FRECHET_RIDGE) == pytest.approx(0.0, abs=1e-4)
    shifted = frechet_distance(feats, feats + np.array([2.0, 0, 0, 0]), ridge=FRECHET_RIDGE)
    assert shifted == pytest.approx(4.0, rel=1e-3)

    def former(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
        ca = np.cov(a, rowvar=False) + eps * np.eye(a.shape[1])
        cb = np.cov(b, rowvar=False) + eps * np.eye(b.shape[1])
        covmean = linalg.sqrtm(ca @ cb).real
        return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * covmean))

    # few samples in many dimensions (singular covariances), as 14 held-out runs give
    for n_a, n_b, dim in ((14, 14, 32), (7, 7, 32), (40, 60, 8)):
        a = rng.standard_normal((n_a, dim)) * rng.random(dim)
        b = rng.standard_normal((n_b, dim)) * rng.random(dim) + 0.1
        assert frechet_distance(a, b, ridge=FRECHET_RIDGE) == pytest.approx(
            former(a, b), rel=1e-9, abs=1e-12)


def test_teacher_forced_steps_equal_prefix_predictions():
    """One packed pass gives, at step t, the prediction the model makes after the prefix
    z_0..z_t; padded steps stay zero and rollout with a carried state equals re-reading."""
    from clarm.train import next_step_batches

    torch.manual_seed(1)
    model = LatentLSTM(LSTMConfig(latent_dim=3, hidden=8, modules=6)).eval()
    z = torch.randn(2, 6, 3)
    inputs, lengths, targets, mask = next_step_batches(z, torch.tensor([6, 4]), min_length=2)
    assert inputs.shape == targets.shape == (2, 5, 3)
    torch.testing.assert_close(targets, z[:, 1:])
    assert lengths.tolist() == [5, 3]
    assert mask.tolist() == [[False, True, True, True, True], [False, True, True, False, False]]
    with torch.no_grad():
        steps = model.predict_steps(inputs, lengths)
        for t in range(5):
            for row in range(2):
                if t < lengths[row]:
                    prefix = inputs[row:row + 1, :t + 1]
                    torch.testing.assert_close(steps[row, t],
                                               model(prefix, torch.tensor([t + 1]))[0])
                else:
                    assert torch.all(steps[row, t] == 0)
        rolled = model.rollout(z[:, :2], 6)
        seq = z[:, :2]
        while seq.shape[1] < 6:
            seq = torch.cat([seq, model(seq, torch.full((2,), seq.shape[1]))[:, None]], dim=1)
    torch.testing.assert_close(rolled, seq)
    with pytest.raises(ValueError):
        next_step_batches(z[:, :2], min_length=2)


def test_cosine_schedule_endpoints():
    from clarm.train import CVAETrainConfig, scheduled_lr

    cfg = CVAETrainConfig(lr=1e-3, lr_min=1e-5)
    assert scheduled_lr(cfg, 0.0) == pytest.approx(1e-3)
    assert scheduled_lr(cfg, 0.5) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert scheduled_lr(cfg, 1.0) == pytest.approx(1e-5)
    assert scheduled_lr(CVAETrainConfig(schedule="constant"), 0.7) == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        CVAETrainConfig(schedule="step").validate()


def _skimage_ssim_by_hand(real: np.ndarray, pred: np.ndarray) -> float:
    """scikit-image's structural_similarity(real, pred, data_range=real.max()-real.min())
    with its defaults, written out with loops: 7x7 uniform windows, sample covariance,
    mean over the windows that fit inside the image."""
    r = real.max() - real.min()
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    vals = []
    for i in range(real.shape[0] - 6):
        for j in range(real.shape[1] - 6):
            a = real[i:i + 7, j:j + 7].ravel()
            b = pred[i:i + 7, j:j + 7].ravel()
            ma, mb = a.mean(), b.mean()
            va, vb = a.var(ddof=1), b.var(ddof=1)
            cov = ((a - ma) * (b - mb)).sum() / 48
            vals.append((2 * ma * mb + c1) * (2 * cov + c2)
                        / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_paper_ssim_equals_the_skimage_definition():
    from clarm.metrics import ssim_paper

    rng = np.random.default_rng(3)
    real = rng.random((2, 2, 12, 13)) * 0.3
    pred = real + 0.05 * rng.standard_normal(real.shape)
    got = ssim_paper(pred, real).numpy()
    for n in range(2):
        for c in range(2):
            assert got[n, c] == pytest.approx(_skimage_ssim_by_hand(real[n, c], pred[n, c]),
                                              abs=1e-5)
    assert torch.allclose(ssim_paper(real, real), torch.ones(2, 2))
    # the data range is the real image's own: scaling both images changes nothing
    assert torch.allclose(ssim_paper(pred * 7, real * 7), ssim_paper(pred, real), atol=1e-5)


def test_precision_recall_detects_mode_collapse():
    from clarm.metrics import precision_recall

    rng = np.random.default_rng(4)
    real = rng.standard_normal((300, 4))
    p, r = precision_recall(real, rng.standard_normal((300, 4)))
    assert p > 0.85 and r > 0.85
    collapsed = 0.1 * rng.standard_normal((300, 4))  # all samples near the mode
    p, r = precision_recall(real, collapsed)
    assert p > 0.95 and r < 0.3


def test_output_bias_starts_the_decoder_at_the_mean_pixel():
    """On sparse images (most pixels empty, as the public ranges give at 64 x 64) an untrained
    decoder with PyTorch's default bias outputs ~0.5 everywhere; ``init_output_bias`` starts
    it at each projection's mean pixel, so the initial summed BCE is far lower."""
    torch.manual_seed(0)
    images = torch.zeros(8, 15, 32, 32)
    images[:, :, 14:18, 13:19] = torch.rand(8, 15, 4, 6)  # a small blob in a 32 x 32 window
    pixel_mean = images.mean(dim=(0, 2, 3))
    module = torch.zeros(8, dtype=torch.long)
    losses = {}
    for bias in ("zero", "mean"):
        torch.manual_seed(1)
        model = CVAE(CVAEConfig(resolution=32, modules=3, base_filters=4)).eval()
        if bias == "mean":
            model.init_output_bias(pixel_mean.numpy())
            last = model.decoder[-1]
            assert isinstance(last, torch.nn.ConvTranspose2d) and last.bias is not None
            torch.testing.assert_close(torch.sigmoid(last.bias), pixel_mean)
        with torch.no_grad():
            losses[bias] = float(cvae_loss(model(images, module), images)[1])
    # 0.5 everywhere: ln 2 per pixel; the mean level: about the per-channel constant's BCE
    assert losses["zero"] > 0.9 * 15 * 32 * 32 * np.log(2)
    assert losses["mean"] < 0.2 * losses["zero"]
    with pytest.raises(ValueError):
        model.init_output_bias(np.full(14, 0.1))


def test_normaliser_mean_pixel_comes_from_the_same_pass(tiny_h5):
    from clarm.data import PhaseSpaceFile
    from clarm.normalise import Normalizer

    with PhaseSpaceFile(tiny_h5) as f:
        runs = np.array([0, 2, 3], dtype=np.int64)
        norm, mean = Normalizer.fit_with_mean(f, runs, batch=2)
        np.testing.assert_array_equal(norm.scale, Normalizer.fit(f, runs).scale)
        np.testing.assert_allclose(mean, norm(f.images(runs)).mean(axis=(0, 1, 3, 4)),
                                   rtol=1e-5)


def test_conformal_halfwidth_known_case_and_coverage():
    """The half-width is the ceil((n + 1) 0.9)-th smallest score; on exchangeable data the
    interval covers a new point with probability rank / (n + 1) (= 0.9 for n = 19)."""
    from clarm.metrics import conformal_halfwidth

    scores = torch.arange(19, 0, -1, dtype=torch.float64)[:, None]  # 19..1, unsorted
    width, rank, exact = conformal_halfwidth(scores, 0.9)
    assert (rank, exact) == (18, True) and float(width[0]) == 18.0
    width, rank, exact = conformal_halfwidth(torch.arange(1.0, 6.0), 0.9)
    assert (rank, exact) == (6, False) and float(width) == 5.0  # too few: the largest
    gen = torch.Generator().manual_seed(0)
    errors = torch.randn(4000, 20, generator=gen).abs()  # 4000 trials of 19 + 1 points
    width, _, _ = conformal_halfwidth(errors[:, :19].T, 0.9)
    covered = (errors[:, 19] <= width).double().mean().item()
    assert abs(covered - 0.9) < 0.015, covered  # 3 sigma = 0.014
    with pytest.raises(ValueError):
        conformal_halfwidth(torch.zeros(0, 3))
