"""End-to-end CLI at tiny scale (simulate -> train -> generate/forecast -> evaluate) and the
one-line error convention for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clarm.cli import cli
from clarm.data import PhaseSpaceFile
from clarm.generate import GENERATED_SCHEMA
from physml_core.checkpoint import save_checkpoint
from physml_core.hdf5 import read_h5


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def assert_user_error(code: int, output: str, needle: str) -> None:
    assert code == 2, output
    lines = [line for line in output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and needle in lines[0], output
    assert "Traceback" not in output


@pytest.fixture(scope="module")
def pipeline(tiny_h5, tmp_path_factory):
    """Train a tiny CVAE (2 epochs) and LSTM (3 epochs) through the CLI."""
    tmp = tmp_path_factory.mktemp("pipe")
    cvae_dir, lstm_dir = tmp / "cvae", tmp / "lstm"
    code, out = run("train", "cvae", "--data", str(tiny_h5), "--run-dir", str(cvae_dir),
                    "--epochs", "1", "--batch-size", "8", "--base-filters", "4",
                    "--val-fraction", "0.34", "--device", "cpu")
    assert code == 0, out
    # resume: a second call continues at epoch 2 instead of starting over
    code, out = run("train", "cvae", "--data", str(tiny_h5), "--run-dir", str(cvae_dir),
                    "--epochs", "2", "--batch-size", "8", "--base-filters", "4",
                    "--val-fraction", "0.34", "--device", "cpu")
    assert code == 0, out
    code, out = run("train", "lstm", "--data", str(tiny_h5), "--cvae", str(cvae_dir),
                    "--run-dir", str(lstm_dir), "--epochs", "3", "--device", "cpu")
    assert code == 0, out
    # the reference configuration (encoder-only conditioning, N(0, I) prior) to compare with
    code, out = run("train", "cvae", "--data", str(tiny_h5), "--run-dir", str(tmp / "ref"),
                    "--epochs", "1", "--batch-size", "8", "--base-filters", "4",
                    "--val-fraction", "0.34", "--no-cond-decoder", "--prior", "standard",
                    "--device", "cpu")
    assert code == 0, out
    return tmp, cvae_dir, lstm_dir


def test_training_writes_runs_and_resumes(pipeline):
    _, cvae_dir, lstm_dir = pipeline
    steps = [json.loads(line)["step"] for line in
             (cvae_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert (cvae_dir / "config.json").exists()
    assert any((cvae_dir / "tensorboard").iterdir())
    assert sorted(p.name for p in (cvae_dir / "checkpoints").iterdir()) == [
        "ckpt_000000001.pt", "ckpt_000000002.pt"]
    assert (lstm_dir / "checkpoints" / "ckpt_000000003.pt").exists()


def test_generate_forecast_evaluate(pipeline, tiny_h5):
    tmp, cvae_dir, lstm_dir = pipeline
    for method in ("prior", "box"):
        code, out = run("generate", "--checkpoint", str(cvae_dir), "--module", "2", "-n", "3",
                        "--method", method, "-o", str(tmp / f"gen_{method}.h5"),
                        "--plot", str(tmp / f"gen_{method}.png"))
        assert code == 0, out
        gen = read_h5(tmp / f"gen_{method}.h5", GENERATED_SCHEMA)
        assert gen["images"].shape == (3, 15, 32, 32)
        assert np.all(gen["module"] == 2) and np.all(gen["images"] >= 0)
        assert (tmp / f"gen_{method}.png").stat().st_size > 0
    code, out = run("forecast", "--data", str(tiny_h5), "--cvae", str(cvae_dir), "--lstm",
                    str(lstm_dir), "--observed", "1", "--run", "4", "--run", "1",
                    "-o", str(tmp / "fc.h5"))
    assert code == 0, out
    with PhaseSpaceFile(tmp / "fc.h5") as f:
        assert f.images().shape == (2, 3, 15, 32, 32)
        assert list(f.run_index()) == [4, 1]
        assert f.attrs["observed"] == 1
    code, out = run("evaluate", "--data", str(tiny_h5), "--cvae", str(cvae_dir), "--lstm",
                    str(lstm_dir), "--observed", "1", "-n", "4", "--classifier-epochs", "1",
                    "--forecast-samples", "3",
                    "--compare-cvae", str(tmp / "ref"), "-o", str(tmp / "eval"))
    assert code == 0, out
    report = json.loads((tmp / "eval" / "report.json").read_text())
    held = report["held_out_runs"]
    assert len(held) == 2  # 0.34 of 6 runs, never the training runs
    assert 0 < report["reconstruction"]["ssim"]["mean"] <= 1
    assert len(report["reconstruction"]["ssim"]["per_module"]) == 3
    assert len(report["reconstruction"]["mse"]["per_projection"]) == 15
    assert report["forecast"]["modules"] == [1, 2]
    assert "generation_prior" in report and "generation_box" in report
    for key in ("reconstruction", "forecast", "baseline_module_mean", "baseline_persistence",
                "baseline_module_mean_forecast_modules"):
        assert -1 <= report[key]["ssim_paper"]["e_phi"] <= 1
        assert len(report[key]["ssim_paper"]["per_projection"]) == 15
    unc = report["forecast_uncertainty"]
    # default: conformal intervals from the LSTM's one calibration run (run 3, the last CVAE
    # training run): with n = 1 the half-width is that run's own absolute error (rank
    # ceil(2 x 0.9) = 2 > n, so no finite-sample guarantee, and the report says so)
    assert unc["method"] == "conformal" and unc["samples"] == 0
    assert unc["calibration_runs"] == [3] and unc["conformal_rank"] == 2
    assert unc["finite_sample_guarantee"] is False
    assert 0 <= unc["coverage"] <= 1
    from clarm.artifacts import load_cvae, load_lstm
    from clarm.evaluate import e_phi_summary
    from clarm.forecast import forecast

    cvae, lstm = load_cvae(cvae_dir), load_lstm(lstm_dir)
    with PhaseSpaceFile(tiny_h5) as f:
        phys = f.images([3])
    real = torch.from_numpy(cvae.normalizer(phys))
    fc = torch.from_numpy(forecast(cvae, lstm, phys[:, :1], normalized=True))
    own_error = (e_phi_summary(fc[:, 1:]) - e_phi_summary(real[:, 1:])).abs()[0]
    np.testing.assert_allclose(unc["conformal_halfwidth_per_module"], own_error.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert report["generation_prior"]["samples_per_module"] == 4
    table = report["model_comparison"]
    assert [(row["cond_decoder"], row["prior"]) for row in table] == [
        (True, "conditional"), (False, "standard")]
    assert table[0]["reconstruction_ssim"] == report["reconstruction"]["ssim"]["mean"]
    assert all(row["generation_prior_frechet"] >= 0 for row in table)
    assert "generation_box_frechet" in table[1]
    assert report["generation_prior"]["frechet_distance"]["mean"] >= 0
    for png in ("grid_last_module.png", "ssim_vs_module.png"):
        assert (tmp / "eval" / png).stat().st_size > 0


def test_bad_inputs_give_one_line_errors(pipeline, tiny_h5, tmp_path):
    _, cvae_dir, lstm_dir = pipeline
    code, out = run("simulate", "--runs", "1", "--resolution", "48", "-o", str(tmp_path / "a"))
    assert_user_error(code, out, "power of two")
    code, out = run("generate", "--checkpoint", str(cvae_dir), "--module", "3", "-n", "2",
                    "-o", str(tmp_path / "g.h5"))
    assert_user_error(code, out, "out of range")
    foreign = tmp_path / "foreign.pt"
    save_checkpoint(foreign, package="calo", model_name="calogan", step=1)
    code, out = run("generate", "--checkpoint", str(foreign), "--module", "0",
                    "-o", str(tmp_path / "g.h5"))
    assert_user_error(code, out, "calo")
    code, out = run("train", "lstm", "--data", str(tiny_h5), "--cvae", str(lstm_dir),
                    "--run-dir", str(tmp_path / "x"), "--epochs", "1")
    assert_user_error(code, out, "expected 'cvae'")
    images = np.zeros((2, 3, 15, 32, 32), np.float32)
    images[0, 1, 2, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", images)
    code, out = run("convert", "--images", str(tmp_path / "nan.npy"), "-o",
                    str(tmp_path / "c.h5"))
    assert_user_error(code, out, "NaN")
    np.save(tmp_path / "shape.npy", np.zeros((2, 3, 15, 32, 16), np.float32))
    code, out = run("convert", "--images", str(tmp_path / "shape.npy"), "-o",
                    str(tmp_path / "c.h5"))
    assert_user_error(code, out, "expected shape")
    # a 64x64 file given to a model trained on 32x32 images
    np.save(tmp_path / "big.npy", np.ones((2, 3, 15, 64, 64), np.float32))
    code, out = run("convert", "--images", str(tmp_path / "big.npy"), "-o",
                    str(tmp_path / "big.h5"))
    assert code == 0, out
    code, out = run("forecast", "--data", str(tmp_path / "big.h5"), "--cvae", str(cvae_dir),
                    "--lstm", str(lstm_dir), "-o", str(tmp_path / "f.h5"))
    assert_user_error(code, out, "64x64")
    code, out = run("forecast", "--data", str(tiny_h5), "--cvae", str(cvae_dir),
                    "--lstm", str(lstm_dir), "--observed", "3", "-o", str(tmp_path / "f.h5"))
    assert_user_error(code, out, "observed")
    code, out = run("simulate", "--runs", "2", "--shard", "2/2", "-o", str(tmp_path / "s.h5"))
    assert_user_error(code, out, "shard")


def test_simulate_and_merge_cli(tmp_path):
    for shard in ("0/2", "1/2"):
        code, out = run("simulate", "--runs", "2", "--modules", "2", "--resolution", "32",
                        "--particles", "200", "--shard", shard, "-o",
                        str(tmp_path / f"s{shard[0]}.h5"))
        assert code == 0, out
    code, out = run("merge", str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5"),
                    "-o", str(tmp_path / "m.h5"))
    assert code == 0 and "2 runs" in out
    with PhaseSpaceFile(tmp_path / "m.h5") as f:
        assert f.images().shape == (2, 2, 15, 32, 32)
        assert np.all(np.diff(f.energy_MeV(), axis=1) > 0)


def test_normalisation_and_split_come_from_training_runs_only(pipeline, tiny_h5):
    from clarm.artifacts import load_cvae
    from clarm.data import held_out_runs

    _, cvae_dir, _ = pipeline
    cvae = load_cvae(cvae_dir)
    assert set(cvae.train_runs).isdisjoint(cvae.val_runs)
    assert len(cvae.train_runs) + len(cvae.val_runs) == 6
    with PhaseSpaceFile(tiny_h5) as f:
        train_peak = f.images(cvae.train_runs).max(axis=(0, 1, 3, 4))
        np.testing.assert_allclose(cvae.normalizer.scale, train_peak, rtol=1e-6)
        np.testing.assert_array_equal(held_out_runs(cvae, f), cvae.val_runs)
        np.testing.assert_array_equal(cvae.train_run_numbers, f.run_index()[cvae.train_runs])
        assert cvae.train_run_index is not None  # recorded by training


def test_bench_reports_json_figures():
    code, out = run("bench", "--modules", "3", "--resolution", "32", "--sim-runs", "2",
                    "--particles", "200", "--observed", "1")
    assert code == 0, out
    result = json.loads(out[out.index("{"):])
    assert result["torch_threads"] >= 1 and result["training_images_per_s"] > 0
    for batch in ("batch_2", "batch_1"):
        sim = result["simulator_s_per_run"][batch]
        obs = result["simulator_observed_modules_s_per_run"][batch]
        fc = result["forecast_s_per_run"][batch]
        assert sim > 0 and obs > 0 and fc > 0
        assert result["forecast_speedup_vs_simulator"][batch] == pytest.approx(sim / fc)
        assert result["end_to_end_speedup"][batch] == pytest.approx(sim / (obs + fc))


def test_a_run_folder_resumes_only_the_same_run(tiny_h5, tmp_path, monkeypatch):
    """The shared training layer's policy: the same command continues a run; other settings
    in the same folder are refused in one line (before the layer, clarm resumed anything, and
    without --run-dir a second run silently 'resumed' the first); --no-resume starts afresh."""
    from clarm.config import CVAETrainConfig
    from clarm.train import train_cvae
    from physml_core.errors import ConfigError

    folder = tmp_path / "cvae"
    args = ["train", "cvae", "--data", str(tiny_h5), "--run-dir", str(folder), "--epochs", "1",
            "--batch-size", "8", "--base-filters", "4", "--val-fraction", "0.34",
            "--device", "cpu", "--no-tensorboard"]
    code, out = run(*args)
    assert code == 0, out
    first = (folder / "checkpoints" / "ckpt_000000001.pt").read_bytes()
    code, out = run(*args, "--lr", "0.002")
    assert_user_error(code, out, "these settings differ: lr")
    assert "--no-resume" in out
    code, out = run(*args)  # the finished run again: nothing more to train
    assert code == 0, out
    assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1
    code, out = run(*args, "--lr", "0.002", "--no-resume")
    assert code == 0, out
    moved = list(folder.glob("replaced-*/checkpoints/ckpt_000000001.pt"))
    assert len(moved) == 1 and moved[0].read_bytes() == first
    code, out = run("train", "lstm", "--data", str(tiny_h5), "--cvae", str(folder),
                    "--run-dir", str(folder), "--epochs", "1")
    assert_user_error(code, out, "holds a 'cvae' run, not 'lstm'")
    # without --run-dir every run gets its own folder under runs/clarm/
    monkeypatch.chdir(tmp_path)
    code, out = run(*[a for a in args if a not in ("--run-dir", str(folder))])
    assert code == 0, out
    assert out.strip().splitlines()[-1].startswith(str(Path("runs") / "clarm" / "cvae-"))
    with pytest.raises(ConfigError, match="data is required"):
        train_cvae(CVAETrainConfig())
    code, out = run("train", "cvae", "--epochs", "1")
    assert_user_error(code, out, "--data")


def test_resumed_training_equals_one_long_run(tiny_h5, tmp_path):
    """Every epoch draws its shuffles and noise from (seed, epoch): two sessions of one epoch
    each give the weights of one session of two epochs (constant learning rate: the cosine
    schedule follows --epochs, which a resumed session may change)."""
    from clarm.config import CVAETrainConfig
    from clarm.train import train_cvae
    from physml_core.checkpoint import load_checkpoint

    def config(folder: str, epochs: int) -> CVAETrainConfig:
        return CVAETrainConfig(data=str(tiny_h5), run_dir=str(tmp_path / folder), epochs=epochs,
                               batch_size=8, base_filters=4, val_fraction=0.34, device="cpu",
                               schedule="constant", tensorboard=False)

    long = train_cvae(config("long", 2), progress_bar=False)
    train_cvae(config("split", 1), progress_bar=False)
    resumed = train_cvae(config("split", 2), progress_bar=False)
    assert resumed.step == long.step == 2
    a = load_checkpoint(long.checkpoint).state["model"]["cvae"]
    b = load_checkpoint(resumed.checkpoint).state["model"]["cvae"]
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0, msg=key)


def test_simulate_and_merge_record_provenance(tmp_path):
    from clarm.sim import SIM_SOURCE, SimConfig, machine_id
    from physml_core.provenance import Provenance, from_attrs

    label = machine_id(SimConfig(modules=2, resolution=32, particles=200, seed=5))
    for shard in ("0/2", "1/2"):
        code, out = run("simulate", "--runs", "3", "--modules", "2", "--resolution", "32",
                        "--particles", "200", "--seed", "5", "--shard", shard, "-o",
                        str(tmp_path / f"s{shard[0]}.h5"))
        assert code == 0, out
    with PhaseSpaceFile(tmp_path / "s1.h5") as f:
        assert from_attrs(f.attrs) == [Provenance(SIM_SOURCE, 5, label, 2, 3, "1/2")]
        assert f.attrs["provenance_rows"] == [2, 3]
    # shards given out of order: merged in run order, contiguous ranges joined
    code, out = run("merge", str(tmp_path / "s1.h5"), str(tmp_path / "s0.h5"),
                    "-o", str(tmp_path / "m.h5"))
    assert code == 0, out
    with PhaseSpaceFile(tmp_path / "m.h5") as f:
        assert from_attrs(f.attrs) == [Provenance(SIM_SOURCE, 5, label, 0, 3, "merged")]
        assert list(f.run_index()) == [0, 1, 2]


def test_checkpoints_record_training_provenance(pipeline, tiny_h5):
    from clarm.artifacts import load_cvae, load_lstm
    from clarm.sim import SIM_SOURCE, SimConfig, machine_id
    from physml_core.checkpoint import load_checkpoint
    from physml_core.provenance import Provenance, from_records

    _, cvae_dir, lstm_dir = pipeline
    label = machine_id(SimConfig(modules=3, resolution=32, particles=600, seed=3))
    ckpt = load_checkpoint(cvae_dir, package="clarm", model_name="cvae")
    # 6 runs, 0.34 held out: runs 0..3 train, 4..5 validate
    assert from_records(ckpt.extra["data_provenance"]) == [
        Provenance(SIM_SOURCE, 3, label, 0, 4), Provenance(SIM_SOURCE, 3, label, 4, 6)]
    assert from_records(ckpt.extra["validation_provenance"]) == [
        Provenance(SIM_SOURCE, 3, label, 4, 6)]
    assert load_cvae(cvae_dir).train_provenance == [Provenance(SIM_SOURCE, 3, label, 0, 4)]
    # the LSTM trains on the CVAE's training runs less its calibration run (the last, run 3)
    assert load_lstm(lstm_dir).train_provenance == [Provenance(SIM_SOURCE, 3, label, 0, 3)]
    assert list(load_lstm(lstm_dir).calibration_run_numbers) == [3]


def test_evaluation_refuses_a_file_of_the_training_runs(pipeline, tmp_path):
    """Another file of the same runs (same seed, other particle count: another dataset id, so
    every run of it counts as held out) is refused by provenance; another seed is accepted."""
    from clarm.sim import SimConfig, simulate

    _, cvae_dir, lstm_dir = pipeline
    same = tmp_path / "same_seed.h5"
    simulate(SimConfig(runs=6, modules=3, resolution=32, particles=300, batch_runs=6, seed=3),
             same, progress_bar=False)
    code, out = run("forecast", "--data", str(same), "--cvae", str(cvae_dir), "--lstm",
                    str(lstm_dir), "--observed", "1", "-o", str(tmp_path / "fc.h5"))
    assert_user_error(code, out, "overlaps the training data")
    code, out = run("evaluate", "--data", str(same), "--cvae", str(cvae_dir), "--lstm",
                    str(lstm_dir), "--observed", "1", "--classifier-epochs", "1",
                    "-o", str(tmp_path / "eval"))
    assert_user_error(code, out, "overlaps the training data")
    other = tmp_path / "other_seed.h5"
    simulate(SimConfig(runs=2, modules=3, resolution=32, particles=300, batch_runs=2, seed=4),
             other, progress_bar=False)
    code, out = run("forecast", "--data", str(other), "--cvae", str(cvae_dir), "--lstm",
                    str(lstm_dir), "--observed", "1", "-o", str(tmp_path / "fc2.h5"))
    assert code == 0, out
    with PhaseSpaceFile(tmp_path / "fc2.h5") as f:
        assert f.runs == 2 and f.attrs.get("provenance") is None


def test_a_file_without_provenance_is_forecast_unchecked(pipeline, tiny_h5, tmp_path):
    import shutil

    import h5py

    _, cvae_dir, lstm_dir = pipeline
    old = tmp_path / "old.h5"
    shutil.copy(tiny_h5, old)
    with h5py.File(old, "a") as f:
        del f.attrs["provenance"]
    code, out = run("forecast", "--data", str(old), "--cvae", str(cvae_dir), "--lstm",
                    str(lstm_dir), "--observed", "1", "-o", str(tmp_path / "fc.h5"))
    assert code == 0, out


def test_blockwise_evaluation_equals_whole_evaluation(pipeline, tiny_h5, tmp_path):
    """Held-out runs scored one run at a time give the same scores and intervals as all at
    once (forecast samples are seeded per run; the metrics are per image).  The module
    classifier's minibatches depend on the block, so its figures are not compared."""
    from clarm.evaluate import EvalConfig, evaluate

    _, cvae_dir, lstm_dir = pipeline
    reports = [evaluate(EvalConfig(data=str(tiny_h5), cvae=str(cvae_dir), lstm=str(lstm_dir),
                                   observed=1, classifier_epochs=1, forecast_samples=3,
                                   uncertainty="calibration-residuals", block_runs=b,
                                   output=str(tmp_path / f"b{b}"), device="cpu"))
               for b in (1, 64)]
    for key in ("reconstruction", "baseline_module_mean", "forecast", "baseline_persistence",
                "baseline_module_mean_forecast_modules"):
        for metric in ("ssim", "ssim_paper", "mse"):
            for part in ("per_module", "per_projection"):
                np.testing.assert_allclose(reports[0][key][metric][part],
                                           reports[1][key][metric][part], rtol=1e-5,
                                           atol=1e-7, err_msg=f"{key} {metric} {part}")
    a, b = reports[0]["forecast_uncertainty"], reports[1]["forecast_uncertainty"]
    assert a["method"] == "calibration-residuals" and a["calibration_runs"] == [3]
    for key in ("coverage_per_module", "latent_noise_std"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6)
    for key in ("interval_width_per_quantity", "mean_forecast_abs_error_per_quantity"):
        np.testing.assert_allclose(list(a[key].values()), list(b[key].values()), rtol=1e-5,
                                   atol=1e-7)


def test_conformal_uncertainty_needs_calibration_runs(pipeline, tiny_h5, tmp_path):
    """An LSTM trained with --calibration-fraction 0 has no calibration runs: conformal
    intervals are refused with one line, the old training-residual scale still works."""
    _, cvae_dir, _ = pipeline
    lstm0 = tmp_path / "lstm0"
    code, out = run("train", "lstm", "--data", str(tiny_h5), "--cvae", str(cvae_dir),
                    "--run-dir", str(lstm0), "--epochs", "1", "--calibration-fraction", "0",
                    "--device", "cpu")
    assert code == 0, out
    args = ["evaluate", "--data", str(tiny_h5), "--cvae", str(cvae_dir), "--lstm", str(lstm0),
            "--observed", "1", "--classifier-epochs", "1", "-n", "4"]
    code, out = run(*args, "-o", str(tmp_path / "e1"))
    assert_user_error(code, out, "records no calibration runs")
    code, out = run(*args, "--uncertainty", "train-residuals", "--forecast-samples", "2",
                    "-o", str(tmp_path / "e2"))
    assert code == 0, out
    unc = json.loads((tmp_path / "e2" / "report.json").read_text())["forecast_uncertainty"]
    assert unc["method"] == "train-residuals" and unc["noise_runs"] == 4
