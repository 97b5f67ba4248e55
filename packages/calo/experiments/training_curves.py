"""Losses and validation E_tot / E_inc per epoch of a calo training run (``metrics.jsonl``).

Usage::

    python packages/calo/experiments/training_curves.py RUN_DIR -o curves.png

Prints a Markdown table (one row per logged epoch: every ``train/loss_*`` mean, the validation
mean of E_tot / E_inc and the generated / real occupancy when logged) and draws the losses
(left) and the validation E_tot / E_inc (right) against the epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The epoch records of ``run_dir/metrics.jsonl`` (records without a ``step`` skipped)."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if "step" in record:
                rows.append(record)
    if not rows:
        raise SystemExit(f"{run_dir}/metrics.jsonl holds no epoch records")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    args = parser.parse_args()
    rows = read_metrics(args.run_dir)
    losses = sorted({k for r in rows for k in r if k.startswith("train/loss")})
    extra = [k for k in ("val/etot_over_einc", "val/occupancy_gen", "val/occupancy_real")
             if any(k in r for r in rows)]
    print("| epoch | time (s) | " + " | ".join(losses + extra) + " |")
    print("| --- | --- |" + " --- |" * (len(losses) + len(extra)))
    for r in rows:
        cells = [f"{r[k]:.4g}" if k in r else "" for k in losses + extra]
        print(f"| {r['step']} | {r.get('time_s', float('nan')):.0f} | " + " | ".join(cells) + " |")
    epochs = [r["step"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in losses:
        left.plot(epochs, [r.get(key, float("nan")) for r in rows], marker="o", label=key)
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (epoch mean)")
    left.legend(fontsize=7)
    if "val/etot_over_einc" in extra:
        right.plot(epochs, [r.get("val/etot_over_einc", float("nan")) for r in rows], marker="o")
        right.axhline(1.0, color="grey", lw=0.8)
    right.set_xlabel("epoch")
    right.set_ylabel("validation mean E_tot / E_inc (generated)")
    fig.suptitle(str(args.run_dir))
    fig.tight_layout()
    fig.savefig(args.output, dpi=70)
    plt.close(fig)


if __name__ == "__main__":
    main()
