"""Markdown table of eval_correction.py results (one or more JSON files).

Agents of the same kind (``ckpt:<dir>/<kind>/s<seed>``) are pooled over seeds: medians and
quartiles are taken over all their episodes, and the per-seed medians are listed.  A second
table gives, for kinds with several seeds, the mean +- sd over seeds of each seed's figure
(median final error, fraction within 0.2 rad at step 10, mean return).
Usage: python packages/beamenv/experiments/table.py eval1.json eval2.json ...
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def _kind(policy: str) -> str:
    if policy.startswith("ckpt:"):  # <dir>/<kind>/s<seed>[/checkpoints/<file>]
        parts = Path(policy[5:]).parts
        seed_dirs = [i for i, part in enumerate(parts) if part.startswith("s") and
                     part[1:].isdigit()]
        return parts[seed_dirs[-1] - 1] if seed_dirs else parts[-1]
    return policy


def main() -> None:
    groups: dict[str, list[dict]] = defaultdict(list)
    for path in sys.argv[1:]:
        for r in json.loads(Path(path).read_text()):
            groups[_kind(r["policy"])].append(r)
    print("| policy | runs x episodes | final abs error [rad] median (q25-q75) | abs error at "
          "step 10, median | within 0.2 rad at step 10 | return median (q25-q75) | "
          "per-seed final error medians |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, runs in groups.items():
        err = np.concatenate([np.array(r["abs_errors"]) for r in runs])
        ret = np.concatenate([np.array(r["returns"]) for r in runs])
        final, at10 = err[:, -1], err[:, min(10, err.shape[1] - 1)]
        q = np.percentile(final, [25, 50, 75])
        rq = np.percentile(ret, [25, 50, 75])
        seeds = ", ".join(f"{np.median(np.array(r['abs_errors'])[:, -1]):.2f}" for r in runs)
        print(f"| {kind} | {len(runs)} x {runs[0]['episodes']} | {q[1]:.2f} ({q[0]:.2f}-{q[2]:.2f}) "
              f"| {np.median(at10):.2f} | {np.mean(at10 < 0.2) * 100:.0f} % | {rq[1]:.2f} "
              f"({rq[0]:.2f}-{rq[2]:.2f}) | {seeds if len(runs) > 1 else '-'} |")
    print()
    print("| policy | seeds | final abs error median [rad] | within 0.2 rad at step 10 | "
          "mean return |")
    print("| --- | --- | --- | --- | --- |")
    for kind, runs in groups.items():
        if len(runs) < 2:
            continue
        per_seed = np.array([
            [np.median(np.array(r["abs_errors"])[:, -1]),
             np.mean(np.array(r["abs_errors"])[:, 10] < 0.2) * 100, np.mean(r["returns"])]
            for r in runs])
        mean, sd = per_seed.mean(axis=0), per_seed.std(axis=0, ddof=1)
        print(f"| {kind} | {len(runs)} | {mean[0]:.2f} +- {sd[0]:.2f} | {mean[1]:.0f} +- "
              f"{sd[1]:.0f} % | {mean[2]:.2f} +- {sd[2]:.2f} |")


if __name__ == "__main__":
    main()
