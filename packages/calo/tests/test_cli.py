"""End-to-end CLI pipeline at tiny scale, and one-line errors for bad input."""

from __future__ import annotations

import json
from functools import partial

import h5py
import numpy as np
import pytest

from calo.cli import cli
from calo.data import read_showers
from calo.models import CaloGANConfig
from calo.train import TrainConfig, train
from physml_core.checkpoint import save_checkpoint
from physml_core.testing import error_line, invoke

#: A fast classifier / KPD for tests (the defaults are CaloChallenge's 50 epochs, 5 seeds).
FAST = ("--classifier-seeds", 2, "--classifier-epochs", 2, "--kpd-batch-size", 200,
        "--fpd-min-samples", 100)

run_cli = partial(invoke, cli)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("calo_cli")
    run_cli("simulate", "-n", 200, "-o", root / "train.h5", "--seed", 1)
    run_cli("simulate", "-n", 200, "-o", root / "ref.h5", "--seed", 2)
    run_cli("train", "--model", "vae", "--data", root / "train.h5", "--run-dir", root / "vae",
            "--epochs", 1, "--batch-size", 60, "--device", "cpu")
    return root


def test_simulate_train_generate_evaluate(pipeline):
    root = pipeline
    run = root / "vae"
    assert (run / "config.json").is_file() and (run / "metrics.jsonl").is_file()
    assert list((run / "checkpoints").glob("ckpt_*.pt"))
    run_cli("generate", "--checkpoint", run, "-n", 200, "-o", root / "gen.h5", "--energy", "1:100",
            "--batch-size", 64, "--device", "cpu")
    gen = read_showers(root / "gen.h5")
    assert gen["layer_1"].shape == (200, 12, 12) and gen["layer_1"].min() >= 0
    # Exactly the CaloGAN keys and shapes; overflow is zeros, flagged as not modelled.
    with h5py.File(root / "gen.h5", "r") as f:
        assert {k: f[k].shape for k in f} == {
            "energy": (200, 1), "layer_0": (200, 3, 96), "layer_1": (200, 12, 12),
            "layer_2": (200, 12, 6), "overflow": (200, 3)}
        assert int(f.attrs["overflow_modelled"]) == 0 and "not modelled" in f.attrs[
            "overflow_note"]
    assert gen["overflow"].shape == (200, 3) and not gen["overflow"].any()
    assert (gen["layer_0"] == 0).any()
    assert 1.0 <= gen["energy"].min() and gen["energy"].max() <= 100.0
    # A clean reference (another seed) is accepted with --checkpoint.
    result = run_cli("evaluate", "--reference", root / "ref.h5", "--generated", root / "gen.h5",
                     "-o", root / "eval", "--max-showers", 200, *FAST, "--checkpoint", run)
    report = json.loads((root / "eval" / "report.json").read_text())
    assert report["held_out_check"]["status"].startswith("held out")
    assert report["n_showers"] == 100  # the second half of ref.h5 is the floor sample
    for key in ("classifier_high_level", "classifier_low_level"):
        assert 0.0 <= report[key]["auc"] <= 1.0 and len(report[key]["runs"]) == 2
        assert "auc" in report[key]["floor"] and "auc_sd" in report[key]
    for key in ("fpd_x1e3", "fpd_x1e3_error", "kpd_x1e3", "mean_separation_power"):
        assert key in report and f"{key}_floor" in report
    entry = report["observables"]["E_tot_over_E_inc"]
    assert {"separation_power", "separation_power_floor", "separation_power_quantile",
            "separation_power_quantile_floor"} <= set(entry)
    assert "width_x_0" in report["observables"] and "occupancy_1" in report["observables"]
    assert (root / "eval" / "average_showers.png").stat().st_size > 1000
    assert (root / "eval" / "observables.png").is_file()
    assert "floor" in result.output


def test_resume_continues_therun_cli(pipeline):
    root = pipeline
    run_cli("train", "--model", "vae", "--data", root / "train.h5", "--run-dir", root / "vae",
            "--epochs", 2, "--batch-size", 60, "--device", "cpu")
    steps = sorted(int(p.stem.split("_")[1]) for p in (root / "vae" / "checkpoints").glob("*.pt"))
    assert steps == [1, 2]  # a step is one epoch (physml_core.training)
    # another configuration in the same folder is refused in one line, naming the setting
    bad = run_cli("train", "--model", "vae", "--data", root / "train.h5", "--run-dir", root / "vae",
                  "--epochs", 3, "--batch-size", 50, "--device", "cpu", expect=2)
    assert "batch_size" in error_line(bad)


def test_reference_against_itself_is_indistinguishable(pipeline):
    root = pipeline
    run_cli("simulate", "-n", 200, "-o", root / "ref2.h5", "--seed", 3)
    run_cli("evaluate", "--reference", root / "ref.h5", "--generated", root / "ref2.h5",
            "--reference-2", root / "ref2.h5", "-o", root / "self", "--no-plots", *FAST)
    report = json.loads((root / "self" / "report.json").read_text())
    # The independent sample is the generated file here: every figure equals its floor.
    for key in ("fpd_x1e3", "kpd_x1e3", "mean_separation_power"):
        assert report[key] == pytest.approx(report[f"{key}_floor"])
    assert report["classifier_high_level"]["auc"] == pytest.approx(
        report["classifier_high_level"]["floor"]["auc"])


def test_overlapping_reference_is_refused(pipeline):
    root = pipeline
    # The training file itself (rows 0..200 of seed 1) overlaps the checkpoint's training rows.
    bad = run_cli("evaluate", "--reference", root / "train.h5", "--generated", root / "ref.h5",
                  "--checkpoint", root / "vae", "-o", root / "bad", expect=2)
    assert "overlaps the training data" in error_line(bad)
    # A generated file carries its checkpoint's training rows: refused without --checkpoint too.
    run_cli("generate", "--checkpoint", root / "vae", "-n", 40, "-o", root / "gen2.h5",
            "--device", "cpu")
    bad = run_cli("evaluate", "--reference", root / "train.h5", "--generated", root / "gen2.h5",
                  "-o", root / "bad2", expect=2)
    assert "overlaps the training data" in error_line(bad)
    # The same seed for the other particle is an independent stream: accepted.
    run_cli("simulate", "-n", 200, "-o", root / "gamma1.h5", "--seed", 1, "--particle", "gamma")
    run_cli("evaluate", "--reference", root / "gamma1.h5", "--generated", root / "gen2.h5",
            "-o", root / "ok", "--no-classifier", "--no-plots", "--kpd-batch-size", 50,
            "--fpd-min-samples", 20)


@pytest.mark.slow
def test_gan_checkpoint_generates_through_the_cli(pipeline, tmp_path):
    cfg = TrainConfig(model="gan", data=str(pipeline / "train.h5"), run_dir=str(tmp_path / "gan"),
                      epochs=1, batch_size=8, max_rows=10, device="cpu",
                      gan=CaloGANConfig(latent_dim=16))
    result = train(cfg, progress_bar=False)
    assert result.step >= 1
    run_cli("generate", "--checkpoint", result.checkpoint, "-n", 10, "-o", tmp_path / "g.h5",
            "--energy", "50", "--device", "cpu")
    gen = read_showers(tmp_path / "g.h5")
    np.testing.assert_allclose(gen["energy"], 50.0)
    # A GAN run folder cannot be resumed as a VAE.
    bad = run_cli("train", "--model", "vae", "--data", pipeline / "train.h5", "--run-dir",
                  tmp_path / "gan", "--epochs", 1, "--device", "cpu", expect=2)
    assert "holds a 'calogan' run, not 'calovae'" in error_line(bad)


def test_shard_and_merge_cli(tmp_path):
    from calo.sim import file_provenance

    for i in range(2):
        run_cli("simulate", "-n", 300, "-o", tmp_path / f"s{i}.h5", "--shard", f"{i}/2",
                "--seed", 5)
    run_cli("merge", tmp_path / "s0.h5", tmp_path / "s1.h5", "-o", tmp_path / "all.h5")
    run_cli("simulate", "-n", 300, "-o", tmp_path / "one.h5", "--seed", 5)
    np.testing.assert_array_equal(read_showers(tmp_path / "all.h5")["layer_1"],
                                  read_showers(tmp_path / "one.h5")["layer_1"])
    (merged,) = file_provenance(tmp_path / "all.h5")
    assert (merged.seed, merged.start, merged.stop) == (5, 0, 300)
    # Without --seed the seed is 0 (the shared default): the same showers, recorded in the file.
    first = run_cli("simulate", "-n", 20, "-o", tmp_path / "a.h5")
    run_cli("simulate", "-n", 20, "-o", tmp_path / "b.h5", "--seed", 0)
    assert "seed 0" in first.output
    np.testing.assert_array_equal(read_showers(tmp_path / "a.h5")["layer_1"],
                                  read_showers(tmp_path / "b.h5")["layer_1"])
    assert file_provenance(tmp_path / "a.h5")[0].seed == 0


def test_bench_prints_json():
    result = run_cli("bench", "--models", "vae", "--batch-sizes", "1,16", "--seconds", "0.1",
                     "--device", "cpu")
    data = json.loads(result.output)
    assert data["simulator_showers_per_s"] > 0
    assert data["models"]["vae"]["fp32_batch_16"]["showers_per_s"] > 0


def test_bench_counts_generator_flops_and_roofline():
    result = run_cli("bench", "--models", "gan", "--batch-sizes", "2", "--seconds", "0.1",
                     "--device", "cpu")
    gan = json.loads(result.output)["models"]["gan"]
    assert 60 < gan["mflop_per_shower_nominal"] < 66
    assert 20 < gan["mflop_per_shower_executed"] < 30
    assert sum(gan["mflop_per_layer_nominal"].values()) == pytest.approx(
        gan["mflop_per_shower_nominal"])
    entry = gan["fp32_batch_2"]
    assert 0 < entry["fraction_of_roofline"] < 1.5 and entry["achieved_gflops_executed"] > 0


@pytest.mark.parametrize("args,needle", [
    (["simulate", "-n", "10", "-o", "x.h5", "--energy", "-5:10"], "energy"),
    (["simulate", "-n", "10", "-o", "x.h5", "--shard", "3/2"], "shard"),
    (["train", "--model", "transformer", "--data", "{data}"], "transformer"),
    (["train", "--model", "gan", "--data", "{text}"], "not an HDF5"),
    (["generate", "--checkpoint", "{foreign}", "-n", "5", "-o", "g.h5"], "package 'clarm'"),
    (["generate", "--checkpoint", "{text}", "-n", "5", "-o", "g.h5"], "checkpoint"),
    (["evaluate", "--reference", "{data}", "--generated", "{badshape}"], "layer_2"),
    (["bench", "--batch-sizes", "0"], "batch"),
])
def test_bad_input_gives_one_line_error(pipeline, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    foreign = tmp_path / "foreign.pt"
    save_checkpoint(foreign, package="clarm", model_name="cvae", config={})
    badshape = tmp_path / "bad.h5"
    with h5py.File(badshape, "w") as f:
        f["energy"] = np.ones((5, 1), np.float32)
        f["layer_0"] = np.zeros((5, 3, 96), np.float32)
        f["layer_1"] = np.zeros((5, 12, 12), np.float32)
        f["layer_2"] = np.zeros((5, 6, 12), np.float32)
    fill = {"{data}": str(pipeline / "train.h5"), "{text}": str(text), "{foreign}": str(foreign),
            "{badshape}": str(badshape)}
    result = run_cli(*[fill.get(a, a) for a in args], expect=2)
    assert needle in error_line(result)


def test_generate_rejects_negative_energy(pipeline, tmp_path):
    result = run_cli("generate", "--checkpoint", pipeline / "vae", "-n", "5", "-o", tmp_path / "g.h5",
                     "--energy", "-1:5", expect=2)
    assert "energy" in error_line(result)


def test_presets_set_the_recipe_and_the_calogan_architecture():
    from dataclasses import replace

    from calo.config import DEFAULT_PRESET, PRESETS, preset_config

    cpu = PRESETS["cpu"]["gan"]
    assert cpu.model == "gan" and cpu.epochs == 12 and cpu.batch_size == 64
    assert (cpu.gan.latent_dim, cpu.gan.d_conv_channels) == (128, 32)
    assert cpu.energy_weight_gan == 0.05  # the original's (1.0 before 2026-12-02)
    assert cpu.gan_init_fans == PRESETS["paper"]["gan"].gan_init_fans == "keras"
    copy = preset_config("cpu", "gan")
    copy.gan.latent_dim = 7  # a copy: editing it leaves the preset
    assert PRESETS["cpu"]["gan"].gan.latent_dim == 128
    paper = PRESETS["paper"]["gan"]
    assert paper.gan == CaloGANConfig() and paper.gan.latent_dim == 1024
    assert (paper.batch_size, paper.lr_d, paper.energy_weight_gan) == (256, 2e-5, 0.05)
    assert paper.max_rows is None and paper.max_minutes is None
    assert PRESETS["cpu"]["vae"].gan == CaloGANConfig()  # the VAE recipe leaves the GAN alone
    # The dataclass defaults are the default preset for the default model.
    assert TrainConfig() == PRESETS[DEFAULT_PRESET][TrainConfig().model]
    assert {m: c.model for m, c in PRESETS["paper"].items()} == {"gan": "gan", "vae": "vae"}
    assert replace(TrainConfig(), max_minutes=float("inf")).max_minutes is None


def test_cli_picks_the_preset_and_applies_only_typed_options(monkeypatch, tmp_path):
    import importlib

    train_module = importlib.import_module("calo.train")  # calo.train is also the function
    seen: list[TrainConfig] = []

    def fake_train(config: TrainConfig, progress_bar: bool = True):
        seen.append(config)
        from physml_core.training import TrainResult

        return TrainResult(run_dir=tmp_path, checkpoint=tmp_path / "c.pt", step=1,
                           step_unit="epoch", completed=True, seconds=0.0)

    monkeypatch.setattr(train_module, "train", fake_train)
    run_cli("train", "--model", "gan", "--data", "x.h5", "--preset", "paper", "--epochs", 3,
            "--max-minutes", "inf")
    run_cli("train", "--model", "gan", "--data", "x.h5", "--all-rows")
    paper, cpu = seen
    assert paper.epochs == 3 and paper.max_minutes is None and paper.gan.latent_dim == 1024
    assert paper.batch_size == 256 and paper.data == "x.h5"
    assert cpu.max_rows is None and cpu.epochs == 12 and cpu.max_minutes == 30.0
    bad = run_cli("train", "--model", "gan", "--data", "x.h5", "--all-rows", "--max-rows", 10,
                  expect=2)
    assert "--all-rows" in error_line(bad)
    bad = run_cli("train", "--model", "vae", "--data", "x.h5", "--no-time-limit", expect=2)
    assert "no-time-limit" in error_line(bad)
