"""Multi-seed comparison behind the README's table: Alternator (MLP and reference self-attention
bodies), VRNN, GRU and the memoryless MLP floor on the reference and held-out Lorenz settings.

    OMP_NUM_THREADS=1 python packages/alternators/experiments/compare.py --setting reference \\
        --out results/alternators/reference --seeds 0 1 2
    OMP_NUM_THREADS=1 python packages/alternators/experiments/compare.py --setting heldout \\
        --out results/alternators/heldout --seeds 0 1 2

Each (model, seed) is trained and evaluated in this process with one torch thread; the data file
is simulated once (data seed 0).  Writes ``runs.json`` (every evaluation entry) and ``table.md``
(mean +- sd over seeds) to ``--out``.  ``--only`` restricts the models, ``--quick`` shrinks
everything for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from alternators.config import TrainConfig
from alternators.data import (
    LorenzConfig,
    ReferenceLorenzConfig,
    save_sequences,
    simulate_lorenz,
    simulate_reference_lorenz,
)
from alternators.evaluate import EvaluateConfig, evaluate
from alternators.models import ModelConfig
from alternators.train import train

# name -> (model config kwargs, {setting: (epochs, batch size)})
RECIPES = {
    "alternator": ({"name": "alternator", "body": "mlp"},
                   {"reference": (200, 1), "heldout": (60, 16)}),
    "alternator-attention": ({"name": "alternator", "body": "attention"},
                             {"reference": (200, 1), "heldout": (60, 16)}),
    "gru": ({"name": "rnn", "cell": "gru"}, {"reference": (200, 1), "heldout": (40, 16)}),
    "vrnn": ({"name": "vrnn"}, {"reference": (100, 1), "heldout": (15, 16)}),
    "mlp-floor": ({"name": "mlp"}, {"reference": (200, 1), "heldout": (60, 16)}),
}
ABLATIONS = {
    "alternator-plain-weights": ({"name": "alternator", "loss_weighting": "plain"},
                                 {"reference": (200, 1), "heldout": (60, 16)}),
    "alternator-alpha0.3": ({"name": "alternator", "alpha": 0.3},
                            {"reference": (200, 1), "heldout": (60, 16)}),
    "alternator-alpha0.95": ({"name": "alternator", "alpha": 0.95, "sigma_x": 0.2},
                             {"reference": (200, 1), "heldout": (60, 16)}),
    "alternator-sigmax0.1": ({"name": "alternator", "sigma_x": 0.1},
                             {"reference": (200, 1), "heldout": (60, 16)}),
    "alternator-sigmax0.5": ({"name": "alternator", "sigma_x": 0.5},
                             {"reference": (200, 1), "heldout": (60, 16)}),
}


def make_data(setting: str, path: Path, quick: bool) -> None:
    if setting == "reference":
        data = simulate_reference_lorenz(ReferenceLorenzConfig(n_steps=100 if quick else 400))
    else:
        data = simulate_lorenz(LorenzConfig(n_train=4 if quick else 48, n_val=2 if quick else 8,
                                            n_test=2 if quick else 16,
                                            n_steps=60 if quick else 200, seed=0))
    save_sequences(path, data)


def _get(entry: dict, *keys: str) -> float | None:
    for key in keys:
        if not isinstance(entry, dict) or key not in entry:
            return None
        entry = entry[key]
    return None if entry is None else float(entry)


COLUMNS = [
    ("latent CC", ("decoding", "cc")),
    ("latent MAE", ("decoding", "mae")),
    ("forecast latent MAE", ("forecast", "latent", "mae")),
    ("forecast latent CRPS", ("forecast", "latent", "crps")),
    ("forecast latent cov90", ("forecast", "latent", "coverage90")),
    ("forecast obs CRPS*", ("forecast", "observation", "crps")),
    ("forecast obs cov90", ("forecast", "observation", "coverage90")),
    ("gap latent MAE", ("imputation", "latent", "mae")),
    ("gap latent CRPS", ("imputation", "latent", "crps")),
    ("gap obs MAE*", ("imputation", "observation", "mae")),
    ("gap obs CRPS*", ("imputation", "observation", "crps")),
    ("gap obs cov90", ("imputation", "observation", "coverage90")),
    ("train s", ("train_seconds",)),
]


def table(results: dict[str, list[dict]]) -> str:
    head = "| model | seeds | params | " + " | ".join(c for c, _ in COLUMNS) + " |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for name, entries in results.items():
        cells = []
        for _, keys in COLUMNS:
            vals = [v for v in (_get(e, *keys) for e in entries) if v is not None]
            if not vals:
                cells.append("-")
                continue
            digits = 0 if keys == ("train_seconds",) else 3
            sd = np.std(vals, ddof=1) if len(vals) > 1 else 0.0
            cells.append(f"{np.mean(vals):.{digits}f} +- {sd:.{digits}f}")
        rows.append(f"| {name} | {len(entries)} | {entries[0]['parameters']:,} | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=["reference", "heldout"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data.h5"
    if not data.exists():
        make_data(args.setting, data, args.quick)
    recipes = dict(ABLATIONS) if args.ablations else dict(RECIPES)
    if args.only:
        recipes = {k: v for k, v in recipes.items() if k in args.only}
    runs_file = args.out / ("ablations.json" if args.ablations else "runs.json")
    results: dict[str, list[dict]] = json.loads(runs_file.read_text()) \
        if runs_file.exists() else {}
    split = "train" if args.setting == "reference" else "test"
    horizon = 10 if args.quick else 50
    for name, (model_kw, schedule) in recipes.items():
        done = {e["seed"] for e in results.get(name, [])}
        epochs, batch = schedule[args.setting]
        if args.quick:
            epochs = 2
        for seed in args.seeds:
            if seed in done:
                continue
            run_dir = args.out / "runs" / f"{name}_s{seed}"
            t0 = time.perf_counter()
            train(TrainConfig(data=str(data), run_dir=str(run_dir),
                              model=ModelConfig(**model_kw), epochs=epochs, batch_size=batch,
                              lr=3e-3, weight_decay=0.01, seed=seed, device="cpu",
                              tensorboard=False, checkpoint_every=epochs))
            wall = time.perf_counter() - t0
            report = evaluate(EvaluateConfig(
                checkpoints=[str(run_dir)], data=str(data), output=str(run_dir / "eval"),
                split=split, n_samples=args.samples, horizon=horizon, seed=seed,
                device="cpu", plots=False))
            entry = report["models"][0]
            entry.update(seed=seed, train_wall_seconds=wall, epochs=epochs, batch_size=batch,
                         model_config=model_kw)
            results.setdefault(name, []).append(entry)
            runs_file.write_text(json.dumps(results, indent=1))
            print(f"{name} seed {seed}: CC {entry.get('decoding', {}).get('cc'):.4f} "
                  f"MAE {entry.get('decoding', {}).get('mae'):.4f} train {wall:.0f} s",
                  flush=True)
    text = table(results)
    (args.out / ("ablations.md" if args.ablations else "table.md")).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
