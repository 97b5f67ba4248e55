"""CaloGAN's multi-particle (ACGAN) mode, as in the original ``models/train.py``: the label
embedding of the generator, the auxiliary classifier and its loss, mixed batches of several
particle files, checkpoints that record the particle types, generation of a chosen particle,
one-line CLI errors; and the one-particle GAN unchanged by it."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from calo.artifacts import load_model, load_training_provenance
from calo.cli import cli
from calo.config import TrainConfig
from calo.data import CALO_SCHEMA, read_showers, write_showers
from calo.models import CaloGAN, CaloGANConfig
from calo.models.calogan import auxiliary_loss, auxiliary_prediction
from calo.sim import SimConfig, simulate_to_file
from calo.stream import MixedShowerStream
from calo.train import _GanTrainer, train
from physml_core.hdf5 import H5Reader
from physml_core.provenance import ProvenanceOverlapError, check_disjoint, from_attrs
from physml_core.testing import error_line, invoke

TINY = CaloGANConfig(latent_dim=8, d_conv_channels=4, d_lc_channels=(2, 2, 2),
                     g_dense_channels=2, g_conv_channels=2, g_lc_channels=2)
LAYER_SHAPES = (("layer_0", (3, 96)), ("layer_1", (12, 12)), ("layer_2", (12, 6)))

run_cli = partial(invoke, cli)


def _synthetic(path: Path, n: int = 40, seed: int = 7) -> Path:
    """A CaloGAN file of random sparse cells (no simulator, no provenance)."""
    rng = np.random.default_rng(seed)
    arrays = {"energy": rng.uniform(1, 100, (n, 1)).astype(np.float32)}
    for key, shape in LAYER_SHAPES:
        cells = rng.exponential(50.0, (n, *shape)) * (rng.random((n, *shape)) < 0.2)
        arrays[key] = cells.astype(np.float32)
    arrays["overflow"] = np.zeros((n, 3), np.float32)
    return write_showers(path, arrays)


def test_one_particle_gan_trains_as_before(tmp_path):
    # Recorded with the code of commit 4d9137a (before the multi-particle mode; after the
    # Keras glorot_normal fix), same command, on the same synthetic file: one epoch of a tiny
    # CaloGAN.  The one-particle path must give the same losses and weights.  Those were
    # recorded with the per-position kernel fans, the default then.
    data = _synthetic(tmp_path / "synthetic.h5")
    cfg = TrainConfig(model="gan", data=str(data), run_dir=str(tmp_path / "run"), epochs=1,
                      batch_size=8, max_rows=None, device="cpu", tensorboard=False,
                      max_minutes=None, gan=TINY, gan_init_fans="per_position")
    result = train(cfg, progress_bar=False)
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["train/loss_d"] == pytest.approx(10.23938217163086, rel=1e-4)
    assert row["train/loss_g_adv"] == pytest.approx(0.004388894070871174, rel=1e-4)
    assert row["train/loss_g_energy"] == pytest.approx(151.23553161621095, rel=1e-4)
    assert row["val/etot_over_einc"] == pytest.approx(0.36262673139572144, rel=1e-4)
    assert row["val/occupancy_gen"] == pytest.approx(0.4092261791229248, rel=1e-4)
    assert not any("aux" in key for key in row)
    state = torch.load(result.checkpoint, weights_only=False)["model"]["model"]
    g = sum(float(v.double().abs().sum()) for k, v in state.items()
            if k.startswith("generator.") and v.is_floating_point())
    d = sum(float(v.double().abs().sum()) for k, v in state.items()
            if k.startswith("discriminator.") and v.is_floating_point())
    assert (g, d) == (pytest.approx(10995.562428485471, rel=1e-5),
                      pytest.approx(10568.355754945807, rel=1e-5))
    np.testing.assert_allclose(state["generator.streams.0.lc2.weight"].flatten()[:4],
                               [-0.425760418176651, -0.3713511824607849, -0.467495322227478,
                                -0.02955334261059761], rtol=1e-4)
    assert "generator.class_embedding.weight" not in state and "discriminator.aux.weight" \
        not in state
    assert load_model(result.checkpoint).particles == []  # the file records no particle


def test_auxiliary_loss_is_the_originals_binary_cross_entropy():
    # Keras binary_crossentropy of the sigmoid output against the labels, by hand.
    logits = [0.3, -1.2, 2.0, 0.0, -0.7]
    labels = [1, 0, 0, 1, 1]
    expected = 0.0
    for x, y in zip(logits, labels, strict=True):
        p = 1.0 / (1.0 + math.exp(-x))
        expected -= (y * math.log(p) + (1 - y) * math.log(1.0 - p)) / len(logits)
    aux = torch.tensor(logits, dtype=torch.float64).view(-1, 1)
    y = torch.tensor(labels)
    assert float(auxiliary_loss(aux, y)) == pytest.approx(expected, abs=1e-12)
    assert float(auxiliary_loss(aux, y)) == pytest.approx(0.948179790, abs=1e-9)
    assert auxiliary_prediction(aux).tolist() == [1, 0, 1, 0, 0]
    # more than two types: sparse categorical cross-entropy of the softmax
    logits3 = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.1]], dtype=torch.float64)
    y3 = torch.tensor([2, 1])
    by_hand = -(math.log(math.exp(-1.0) / (math.e + 1.0 + math.exp(-1.0)))
                + math.log(math.exp(2.0) / (math.exp(0.5) + math.exp(2.0) + math.exp(0.1)))) / 2
    assert float(auxiliary_loss(logits3, y3)) == pytest.approx(by_hand, abs=1e-12)


def test_discriminator_step_uses_the_originals_weights_and_label_flip():
    # The original: loss weights 1 (real/fake), 0.05 (energy, no discriminator weights) and
    # 0.2 (auxiliary); generated showers' labels flipped with probability 0.3 (bit_flip:
    # 1 * logical_not(label)).
    cfg = TrainConfig(model="gan", data=["a.h5", "b.h5"], batch_size=4, particles=["eplus", "gamma"],
                      gan=TINY)
    assert (cfg.aux_weight_gan, cfg.aux_label_flip, cfg.energy_weight_gan) == (0.2, 0.3, 0.05)
    labels = torch.tensor([0, 1, 2, 1, 0, 2])
    for p, expect in ((1.0, [1, 0, 0, 0, 1, 0]), (0.0, [0, 1, 2, 1, 0, 2])):
        trainer = _GanTrainer(CaloGAN(TINY, 3), TrainConfig(
            model="gan", data="x.h5", aux_label_flip=p, gan=TINY), torch.device("cpu"),
            (1.0, 100.0))
        assert trainer._flipped(labels, 6).tolist() == expect
    torch.manual_seed(0)
    trainer = _GanTrainer(CaloGAN(TINY, 2), cfg, torch.device("cpu"), (1.0, 100.0))
    flips = torch.stack([trainer._flipped(torch.zeros(1000, dtype=torch.long), 1000)
                         for _ in range(4)]).float().mean()
    assert float(flips) == pytest.approx(0.3, abs=0.03)


def test_generator_output_depends_on_the_particle_label():
    torch.manual_seed(1)
    gan = CaloGAN(TINY, n_classes=2)
    # Keras Embedding(2, latent, glorot_normal): truncated normal, sd sqrt(2 / (2 + latent))
    emb = gan.generator.class_embedding.weight
    assert emb.shape == (2, 8) and emb.abs().max() <= 2 * math.sqrt(2 / 10) / 0.8796256610
    assert gan.discriminator.aux.out_features == 1  # two types: Dense(1, sigmoid)
    assert CaloGAN(TINY, n_classes=3).discriminator.aux.out_features == 3
    g = gan.generator.eval()
    z, e = torch.randn(5, 8), torch.full((5, 1), 40.0)
    zeros, ones = torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.long)
    with torch.no_grad():
        a, b = g(z, e, zeros), g(z, e, ones)  # the folded fast path
        ref = g.forward_reference(z, e, ones)
        # the original: h = z * embedding(label) * E / 100
        plain = CaloGAN(TINY).generator.eval()
        plain.load_state_dict({k: v for k, v in g.state_dict().items()
                               if not k.startswith("class_embedding")})
        by_hand = plain.forward_reference(z * emb[1], e)
    assert any(float((x - y).abs().max()) > 1e-4 for x, y in zip(a, b, strict=True))
    for x, y, w in zip(b, ref, by_hand, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(y, w)
    with pytest.raises(ValueError, match="give the particle labels"):
        g.forward_reference(z, e)
    with pytest.raises(ValueError, match="in \\[0, 2\\)"):
        g.forward_reference(z, e, torch.full((5,), 2))
    out = gan.discriminator(list(a), e)
    assert out.aux is not None and out.aux.shape == (5, 1)


def test_mixed_stream_mixes_files_in_proportion(tmp_path):
    a, b = _synthetic(tmp_path / "a.h5", 30, 1), _synthetic(tmp_path / "b.h5", 60, 2)
    stream = MixedShowerStream([(a, 0, 30, 0), (b, 0, 60, 1)], batch_size=9, block_rows=45,
                               seed=3)
    batches = list(stream.epoch(0))
    assert len(batches) == stream.batches_per_epoch()
    labels = np.concatenate([x["label"] for x in batches])
    energies = np.concatenate([x["energy"][:, 0] for x in batches])
    assert len(labels) == 90  # two superblocks of 45 rows, five batches of 9 each
    np.testing.assert_array_equal(np.sort(energies[labels == 0]),
                                  np.sort(read_showers(a)["energy"][:, 0]))
    np.testing.assert_array_equal(np.sort(energies[labels == 1]),
                                  np.sort(read_showers(b)["energy"][:, 0]))
    # every superblock holds both files in their 1:2 proportion
    assert [int((x["label"] == 0).sum()) for x in batches[:5]] != [0] * 5
    assert int(sum((x["label"] == 0).sum() for x in batches[:5])) == 15
    again = list(stream.epoch(0))
    assert all(np.array_equal(x["energy"], y["energy"]) for x, y in zip(batches, again,
                                                                         strict=True))


@pytest.fixture(scope="module")
def two_particles(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calo_acgan")
    simulate_to_file(root / "eplus.h5", 60, SimConfig(particle="eplus", seed=4))
    simulate_to_file(root / "gamma.h5", 60, SimConfig(particle="gamma", seed=4))
    return root


def test_two_particle_run_records_its_particles_and_generates_each(two_particles, tmp_path):
    root = two_particles
    # gamma first on the command line: labels are the sorted names, as the LabelEncoder
    run_cli("train", "--model", "gan", "--data", root / "gamma.h5", "--data", root / "eplus.h5",
            "--run-dir", tmp_path / "run", "--epochs", 1, "--batch-size", 16, "--max-rows", 20,
            "--device", "cpu", "--no-tensorboard", "--max-minutes", "inf")
    row = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("train/loss_d_aux", "train/loss_g_aux", "train/aux_acc_real",
                "train/aux_acc_fake", "val/aux_acc_real", "val/aux_acc_gen",
                "val/etot_over_einc_eplus", "val/etot_over_einc_gamma"):
        assert np.isfinite(row[key]), key
    loaded = load_model(tmp_path / "run")
    assert loaded.particles == ["eplus", "gamma"] and loaded.config.particles == ["gamma", "eplus"]
    assert isinstance(loaded.model, CaloGAN) and loaded.model.n_classes == 2
    assert {(p.setting, p.seed) for p in loaded.provenance} == {("eplus", 4), ("gamma", 4)}
    assert max(p.stop for p in loaded.provenance) == 20  # 18 training + 2 validation rows each
    for particle in ("eplus", "gamma"):
        out = tmp_path / f"{particle}.h5"
        run_cli("generate", "--checkpoint", tmp_path / "run", "-n", 12, "-o", out, "--particle",
                particle, "--energy", "30", "--device", "cpu")
        with h5py.File(out) as f:
            assert f.attrs["particle"] == particle
        assert read_showers(out)["layer_1"].shape == (12, 12, 12)
    a, b = read_showers(tmp_path / "eplus.h5"), read_showers(tmp_path / "gamma.h5")
    assert not np.array_equal(a["layer_1"], b["layer_1"])  # same seed, other label
    bad = run_cli("generate", "--checkpoint", tmp_path / "run", "-n", 5, "-o", tmp_path / "x.h5",
                  "--particle", "piplus", expect=2)
    assert "unknown particle 'piplus'" in error_line(bad)
    bad = run_cli("generate", "--checkpoint", tmp_path / "run", "-n", 5, "-o", tmp_path / "x.h5",
                  expect=2)
    assert "choose one with --particle" in error_line(bad)
    # the held-out check (calo evaluate --checkpoint) covers every training file
    trained = load_training_provenance(tmp_path / "run")
    assert trained is not None
    for name in ("eplus", "gamma"):
        with H5Reader(root / f"{name}.h5", CALO_SCHEMA) as reader:
            records = from_attrs(reader.attrs)
        with pytest.raises(ProvenanceOverlapError):
            check_disjoint(trained, records or [])
    simulate_to_file(tmp_path / "held.h5", 10, SimConfig(particle="gamma", seed=5))
    with H5Reader(tmp_path / "held.h5", CALO_SCHEMA) as reader:
        check_disjoint(trained, from_attrs(reader.attrs) or [])  # another seed: accepted


def test_multi_particle_cli_errors_are_one_line(two_particles, tmp_path):
    root = two_particles
    simulate_to_file(tmp_path / "eplus2.h5", 20, SimConfig(particle="eplus", seed=9))
    wrong = tmp_path / "wrong.h5"  # another geometry: layer_2 of 6 x 12 cells
    with h5py.File(wrong, "w") as f:
        f["energy"] = np.ones((5, 1), np.float32)
        f["layer_0"] = np.zeros((5, 3, 96), np.float32)
        f["layer_1"] = np.zeros((5, 12, 12), np.float32)
        f["layer_2"] = np.zeros((5, 6, 12), np.float32)
    base = ("train", "--model", "gan", "--run-dir", tmp_path / "run", "--epochs", 1,
            "--device", "cpu")
    cases = [
        (("--data", root / "eplus.h5", "--data", root / "eplus.h5"), "given twice"),
        (("--data", root / "eplus.h5", "--data", tmp_path / "eplus2.h5"),
         "all hold eplus showers"),
        (("--data", root / "eplus.h5", "--data", wrong), "layer_2"),
        (("--data", root / "eplus.h5", "--data", root / "gamma.h5", "--particles",
          "eplus,piplus"), "holds gamma showers, not piplus"),
        (("--data", root / "eplus.h5", "--data", root / "gamma.h5", "--particles", "eplus"),
         "1 particle name(s) for 2 training file(s)"),
    ]
    for args, needle in cases:
        assert needle in error_line(run_cli(*base, *args, expect=2)), args
    vae = run_cli("train", "--model", "vae", "--data", root / "eplus.h5", "--data",
                  root / "gamma.h5", "--run-dir", tmp_path / "vae", expect=2)
    assert "need --model gan" in error_line(vae)


def _keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """keras.initializers._compute_fans (Keras 2.0.6 - 2.2, channels_last) for 3-D kernels."""
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def test_keras_fans_option_draws_the_kernels_as_keras():
    from calo.artifacts import build_model

    torch.manual_seed(0)
    keras = build_model(TrainConfig(model="gan", data="x.h5", gan=TINY, gan_init_fans="keras"))
    torch.manual_seed(0)
    ours = build_model(TrainConfig(model="gan", data="x.h5", gan=TINY,
                                   gan_init_fans="per_position"))
    assert isinstance(keras, CaloGAN) and isinstance(ours, CaloGAN)
    # generator layer 0, first locally connected layer: he_uniform; Keras kernel (388, 8, 2)
    lc, lc_ours = keras.generator.streams[0].lc1, ours.generator.streams[0].lc1
    n_pos, fan_in, c_out = lc.weight.shape
    assert (n_pos, fan_in, c_out) == (388, 8, 2)
    limit = math.sqrt(6.0 / _keras_fans((n_pos, fan_in, c_out))[0])
    assert 0.95 * limit < float(lc.weight.detach().abs().max()) <= limit
    assert 0.95 * math.sqrt(6.0 / 8) < float(lc_ours.weight.detach().abs().max()) <= math.sqrt(6.0 / 8)
    # the last locally connected layer: glorot_normal (truncated at 2 scales)
    lc2 = keras.generator.streams[0].lc2
    fi, fo = _keras_fans(tuple(lc2.weight.shape))
    assert float(lc2.weight.detach().abs().max()) <= 2 * math.sqrt(2.0 / (fi + fo)) / 0.8796256610
    # minibatch discrimination on the layer energies: Keras Dense3D kernel (10, 3, 10)
    mbd = keras.discriminator.mbd_energy
    fi, fo = _keras_fans((mbd.kernels, 3, mbd.dims))
    limit = math.sqrt(6.0 / (fi + fo))
    assert 0.9 * limit < float(mbd.weight.detach().abs().max()) <= limit
    # biases (the attention's -10 included) are untouched
    torch.testing.assert_close(keras.generator.attn01.lc.bias, ours.generator.attn01.lc.bias)


def test_default_gan_starts_from_the_originals_kernel_scale():
    # The original's Keras drew locally connected kernels with fans times the number of output
    # positions.  Until 2026-12-02 this port's default drew them per position (about 20x
    # larger), so a fresh cpu-preset generator made showers of about 5x the incident energy in
    # cells of about 1 GeV, and its first updates shrank them by switching cells off.
    from calo.artifacts import build_model
    from calo.config import preset_config

    cfg = preset_config("cpu", "gan")
    assert TrainConfig(model="gan", data="x.h5").gan_init_fans == cfg.gan_init_fans == "keras"
    ratios = {}
    for fans in ("keras", "per_position"):
        torch.manual_seed(0)
        cfg.gan_init_fans = fans
        gan = build_model(cfg)
        assert isinstance(gan, CaloGAN)
        lc = gan.generator.streams[0].lc1
        n_pos, fan_in, _ = lc.weight.shape
        limit = math.sqrt(6.0 / (fan_in * (n_pos if fans == "keras" else 1)))
        assert 0.95 * limit < float(lc.weight.detach().abs().max()) <= limit
        energy = torch.full((256, 1), 50.0)
        with torch.no_grad():
            images = gan.generator.forward_reference(torch.randn(256, cfg.gan.latent_dim),
                                                     energy)
        ratios[fans] = float(sum(img.sum() for img in images)) / float(energy.sum())
    assert ratios["keras"] < 0.2 and ratios["per_position"] > 2.0
