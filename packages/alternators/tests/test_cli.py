"""End-to-end command line at tiny scale: simulate -> train -> evaluate -> sample/forecast/impute,
resume, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from alternators.cli import cli
from alternators.data import load_sequences
from physml_core.checkpoint import latest, load_checkpoint, save_checkpoint
from physml_core.logging import read_metrics

pytestmark = pytest.mark.slow  # a few trainings; about 20 s of CPU in all

TRAIN = ["--epochs", "2", "--hidden", "8", "--layers", "1", "--batch-size", "4", "--device",
         "cpu", "--no-tensorboard", "--checkpoint-every", "1"]


def _run(args, ok=True):
    result = CliRunner().invoke(cli, args)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "lorenz.h5"
    _run(["simulate", "lorenz", "-o", str(data), "--n-train", "6", "--n-val", "2", "--n-test",
          "2", "--steps", "30", "--neurons", "12", "--seed", "1"])
    runs = {}
    for name in ("alternator", "vrnn", "rnn", "mlp"):
        runs[name] = root / name
        _run(["train", "--model", name, "--data", str(data), "--run-dir", str(runs[name]),
              *TRAIN])
    return root, data, runs


def test_simulate_writes_a_valid_file(trained):
    _, data, _ = trained
    d = load_sequences(data)
    assert d.x.shape[:2] == (10, 30) and d.z.shape == (10, 30, 3)
    assert d.attrs["generator"] == "alternators simulate lorenz"


def test_train_writes_run_folder_and_resumes(trained):
    _, data, runs = trained
    run = runs["alternator"]
    assert (run / "config.json").is_file()
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "alternator"
    ckpt = load_checkpoint(latest(run), package="alternators")
    assert ckpt.step == 2 and "x_norm" in ckpt.extra
    args = ["train", "--model", "alternator", "--data", str(data), "--run-dir", str(run),
            *TRAIN]
    args[args.index("--epochs") + 1] = "3"
    _run(args)
    assert load_checkpoint(latest(run)).step == 3
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl")]
    assert steps == [1, 2, 3]  # resumed at epoch 3, not restarted
    # a run folder of another model is refused
    bad = _run(["train", "--model", "rnn", "--data", str(data), "--run-dir", str(run), *TRAIN],
               ok=False)
    assert bad.exit_code == 2 and "alternator" in bad.output


def test_evaluate_prints_one_table_for_all_models(trained):
    root, data, runs = trained
    out = root / "eval"
    picks = [arg for r in runs.values() for arg in ("--checkpoint", str(r))]
    result = _run(["evaluate", *picks,
                   "--data", str(data), "-o", str(out), "--horizon", "10", "--samples", "2"])
    for name in runs:
        assert f"| {name} |" in result.output
    report = json.loads((out / "evaluation.json").read_text())
    assert [m["model"] for m in report["models"]] == ["alternator", "vrnn", "rnn", "mlp"]
    for m in report["models"]:
        assert len(m["decoding"]["cc_per_dim"]) == 3
        assert m["decoding"]["mse"] >= 0 and -1 <= m["decoding"]["cc"] <= 1
        assert m["forecast"]["latent"]["mae"] >= 0
        for task in ("forecast", "imputation"):
            scores = m[task]["observation"]
            assert scores["crps"] >= 0 and 0 <= scores["coverage90"] <= 1
            assert m[task]["latent"]["crps"] <= m[task]["latent"]["mae"] + 1e-5
        assert m["parameters"] > 0 and m["train_seconds"] > 0
    assert report["gap"] == [10, 20]
    assert (out / "latents_3d.png").stat().st_size > 1000
    assert (out / "forecast_fan.png").stat().st_size > 1000


def test_sample_forecast_impute(trained):
    root, data, runs = trained
    ckpt = str(runs["alternator"])
    _run(["sample", "--checkpoint", ckpt, "-o", str(root / "s.h5"), "-n", "3", "--steps", "7",
          "--samples", "2"])
    with h5py.File(root / "s.h5") as f:
        assert f["x_samples"].shape[:3] == (3, 2, 7) and f["z_mean"].shape == (3, 7, 3)
    _run(["forecast", "--checkpoint", str(runs["vrnn"]), "--data", str(data), "-o",
          str(root / "f.h5"), "--horizon", "5", "--samples", "3"])
    with h5py.File(root / "f.h5") as f:
        assert f["z_samples"].shape == (2, 3, 30, 3)
        assert f["mask"][0].tolist() == [1] * 25 + [0] * 5
    _run(["impute", "--checkpoint", ckpt, "--data", str(data), "-o", str(root / "i.h5"),
          "--missing", "10:15", "--samples", "2"])
    with h5py.File(root / "i.h5") as f:
        x_true, x_mean = f["x_true"][:], f["x_mean"][:]
        np.testing.assert_allclose(x_mean[:, :10], x_true[:, :10])
        assert not np.allclose(x_mean[:, 10:15], x_true[:, 10:15])


def test_unsupervised_training_on_windows(trained):
    root, data, _ = trained
    run = root / "unsup"
    _run(["train", "--model", "alternator", "--data", str(data), "--run-dir", str(run),
          "--unsupervised", "--latent-dim", "2", "--window", "10", *TRAIN])
    result = _run(["evaluate", "--checkpoint", str(run), "--data", str(data), "-o",
                   str(root / "eval_unsup"), "--horizon", "5", "--samples", "2"])
    report = json.loads((root / "eval_unsup" / "evaluation.json").read_text())
    entry = report["models"][0]
    assert entry["supervised"] is False and "decoding" not in entry
    assert entry["forecast"]["observation"]["crps"] > 0
    assert "| alternator |" in result.output


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error"), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_inputs_give_one_line_errors(trained, tmp_path):
    _, data, runs = trained
    ckpt = str(runs["alternator"])
    nan_file = tmp_path / "nan.h5"
    with h5py.File(nan_file, "w") as f:
        x = np.zeros((4, 30, 2))
        x[1, 3, 0] = np.nan
        f["x"] = x
    _assert_one_line_error(_run(["train", "--data", str(nan_file), "--epochs", "1"], ok=False),
                           "NaN")
    flat = tmp_path / "flat.h5"
    with h5py.File(flat, "w") as f:
        f["x"] = np.zeros((4, 30))
    _assert_one_line_error(_run(["train", "--data", str(flat), "--epochs", "1"], ok=False),
                           "shape")
    np.save(tmp_path / "mask.npy", np.ones(7, dtype=bool))
    _assert_one_line_error(_run(["impute", "--checkpoint", ckpt, "--data", str(data), "-o",
                                 str(tmp_path / "i.h5"), "--mask", str(tmp_path / "mask.npy")],
                                ok=False), "mask has length 7")
    _assert_one_line_error(_run(["impute", "--checkpoint", ckpt, "--data", str(data), "-o",
                                 str(tmp_path / "i.h5"), "--missing", "20:99"], ok=False),
                           "missing range")
    other = tmp_path / "ckpt_000000001.pt"
    save_checkpoint(other, package="calo", model_name="vae", config={})
    _assert_one_line_error(_run(["sample", "--checkpoint", str(other), "-o",
                                 str(tmp_path / "s.h5")], ok=False), "calo")
    wrong_dims = tmp_path / "wrong.h5"
    with h5py.File(wrong_dims, "w") as f:
        f["x"] = np.zeros((4, 30, 5))
    _assert_one_line_error(_run(["evaluate", "--checkpoint", ckpt, "--data", str(wrong_dims),
                                 "-o", str(tmp_path / "e"), "--horizon", "10"], ok=False),
                           "features")
    ragged = tmp_path / "ragged.npy"
    np.save(ragged, np.array([np.zeros((3, 2)), np.zeros((4, 2))], dtype=object),
            allow_pickle=True)
    _assert_one_line_error(_run(["import", str(ragged), "-o", str(tmp_path / "r.h5")],
                                ok=False), "ragged")
    bad_shape = tmp_path / "bad.npy"
    np.save(bad_shape, np.zeros((2, 3, 4, 5)))
    _assert_one_line_error(_run(["import", str(bad_shape), "-o", str(tmp_path / "b.h5")],
                                ok=False), "(N, T, D)")
    short_row = tmp_path / "short.csv"
    short_row.write_text("sequence,a,b\n0,1,2\n0,3\n")
    _assert_one_line_error(_run(["import", str(short_row), "-o", str(tmp_path / "c.h5")],
                                ok=False), "row 3")


def test_reference_setting_and_imported_data_train_and_evaluate(tmp_path):
    ref = tmp_path / "ref.h5"
    out = _run(["simulate", "lorenz", "--setting", "reference", "-o", str(ref), "--steps", "60",
                "--neurons", "20"]).output
    assert "reference setting" in out
    d = load_sequences(ref)
    assert d.x.shape[:2] == (1, 60) and d.split.tolist() == [0]
    assert d.x.min() >= -1 and d.x.max() <= 1 and d.z.min() >= -1 and d.z.max() <= 1
    _run(["train", "--model", "alternator", "--body", "attention", "--data", str(ref),
          "--run-dir", str(tmp_path / "ref_run"), *TRAIN])
    _run(["evaluate", "--checkpoint", str(tmp_path / "ref_run"), "--data", str(ref),
          "--split", "train", "-o", str(tmp_path / "ref_eval"), "--horizon", "10",
          "--no-plots"])
    # a long CSV with gaps and two sequences of different lengths
    rows = ["sequence,time,a,b,u"]
    for seq, length in (("s1", 12), ("s2", 9)):
        for t in range(length):
            a = "" if (seq, t) == ("s1", 3) else f"{np.sin(t):.3f}"
            rows.append(f"{seq},{t},{a},{np.cos(t):.3f},{t / 10:.2f}")
    csv_file = tmp_path / "data.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    h5 = tmp_path / "csv.h5"
    _run(["import", str(csv_file), "-o", str(h5), "--time-column", "time",
          "--latent-columns", "u", "--val-fraction", "0", "--test-fraction", "0"])
    d = load_sequences(h5)
    assert d.x.shape == (2, 12, 2) and d.z.shape == (2, 12, 1)
    assert d.lengths.tolist() == [12, 9]
    assert not d.mask[0, 3, 0] and d.mask[0, 3, 1] and not d.mask[1, 9:].any()
    _run(["train", "--model", "rnn", "--data", str(h5), "--run-dir", str(tmp_path / "csv_run"),
          *TRAIN])
    _run(["impute", "--checkpoint", str(tmp_path / "csv_run"), "--data", str(h5), "-o",
          str(tmp_path / "imp.h5")])


def test_simulate_and_merge_record_provenance(tmp_path):
    from alternators.data.simulate import LORENZ_SOURCE, LorenzConfig, trajectory_label
    from physml_core.provenance import Provenance, from_attrs

    label = trajectory_label(LorenzConfig(n_steps=20, seed=4))
    args = ["simulate", "lorenz", "--n-train", "3", "--n-val", "1", "--n-test", "1",
            "--steps", "20", "--neurons", "12", "--seed", "4", "--no-spikes"]
    for shard in ("0/2", "1/2"):
        _run([*args, "--shard", shard, "-o", str(tmp_path / f"s{shard[0]}.h5")])
    assert from_attrs(load_sequences(tmp_path / "s1.h5").attrs) == [
        Provenance(LORENZ_SOURCE, 4, label, 3, 5, "1/2")]
    _run(["merge", "-o", str(tmp_path / "m.h5"), str(tmp_path / "s0.h5"), str(tmp_path / "s1.h5")])
    merged = load_sequences(tmp_path / "m.h5")
    assert from_attrs(merged.attrs) == [Provenance(LORENZ_SOURCE, 4, label, 0, 5, "merged")]
    # inputs out of stream order keep one record each
    _run(["merge", "-o", str(tmp_path / "r.h5"), str(tmp_path / "s1.h5"), str(tmp_path / "s0.h5")])
    assert from_attrs(load_sequences(tmp_path / "r.h5").attrs) == [
        Provenance(LORENZ_SOURCE, 4, label, 3, 5, "1/2"),
        Provenance(LORENZ_SOURCE, 4, label, 0, 3, "0/2")]


def test_checkpoint_records_training_provenance(trained):
    from alternators.artifacts import load_model
    from alternators.data.simulate import LORENZ_SOURCE, LorenzConfig, trajectory_label
    from physml_core.provenance import Provenance, from_records

    _, _, runs = trained
    label = trajectory_label(LorenzConfig(n_steps=30, seed=1))
    ckpt = load_checkpoint(latest(runs["rnn"]), package="alternators")
    train, val = Provenance(LORENZ_SOURCE, 1, label, 0, 6), Provenance(LORENZ_SOURCE, 1, label, 6, 8)
    assert from_records(ckpt.extra["data_provenance"]) == [train, val]
    assert from_records(ckpt.extra["validation_provenance"]) == [val]
    assert load_model(runs["rnn"]).data_provenance == [train, val]


def test_evaluate_refuses_test_sequences_that_were_trained_on(trained, tmp_path):
    """The same seed simulated with fewer training sequences: its test split holds sequences the
    model trained on; another seed is held out."""
    _, _, runs = trained
    ckpt = str(runs["rnn"])
    same = tmp_path / "same_seed.h5"
    _run(["simulate", "lorenz", "-o", str(same), "--n-train", "2", "--n-val", "1", "--n-test",
          "3", "--steps", "30", "--neurons", "12", "--seed", "1", "--no-spikes"])
    result = _run(["evaluate", "--checkpoint", ckpt, "--data", str(same), "-o",
                   str(tmp_path / "e1"), "--horizon", "5", "--samples", "1", "--no-plots"],
                  ok=False)
    _assert_one_line_error(result, "overlaps the training data", "rows 3:6")
    assert not (tmp_path / "e1").exists()
    other = tmp_path / "other_seed.h5"
    # (seed 11 keeps as many neurons as the training file's seed 1: the model's input size)
    _run(["simulate", "lorenz", "-o", str(other), "--n-train", "6", "--n-val", "1", "--n-test",
          "3", "--steps", "30", "--neurons", "12", "--seed", "11", "--no-spikes"])
    _run(["evaluate", "--checkpoint", ckpt, "--data", str(other), "-o", str(tmp_path / "e2"),
          "--horizon", "5", "--samples", "1", "--no-plots"])
    report = json.loads((tmp_path / "e2" / "evaluation.json").read_text())
    assert report["held_out_check"].startswith("held out")


def test_a_file_without_provenance_is_evaluated_unchecked(trained, tmp_path):
    import shutil

    _, data, runs = trained
    old = tmp_path / "old.h5"
    shutil.copy(data, old)
    with h5py.File(old, "a") as f:
        del f.attrs["provenance"]
    _run(["evaluate", "--checkpoint", str(runs["rnn"]), "--data", str(old), "-o",
          str(tmp_path / "e"), "--horizon", "5", "--samples", "1", "--no-plots"])
    report = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert report["held_out_check"] == f"not checked: {old} records no provenance"
