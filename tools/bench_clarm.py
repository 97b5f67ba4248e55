"""Benchmark of clarm: simulator vs surrogate forecast time per run, and training throughput.

Usage: python tools/bench_clarm.py [--modules 12] [--resolution 64] [--sim-runs 4]
Prints JSON; the speed-up ratio is measured in the same process (same threads, same machine).
"""

from __future__ import annotations

import argparse
import json

from clarm.bench import BenchConfig, run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--sim-runs", type=int, default=4)
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = run_bench(BenchConfig(modules=args.modules, resolution=args.resolution,
                                   sim_runs=args.sim_runs, particles=args.particles,
                                   seed=args.seed))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
