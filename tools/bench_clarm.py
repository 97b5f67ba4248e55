"""Benchmark of clarm: simulator vs forecast per run (equal batch sizes and batch 1, the
end-to-end saving including simulating the observed modules), training throughput, and
(``--stream FILE``) one CVAE epoch streamed from an HDF5 file with its peak memory.

Usage:
    python tools/bench_clarm.py [--modules 12] [--sim-runs 4] [--particles 10000] [--threads 1]
    clarm synthetic --runs 1400 --modules 48 --resolution 64 -o zenodo_size.h5
    python tools/bench_clarm.py --stream zenodo_size.h5 --threads 1
Prints JSON; every figure is measured in the same process with the same thread count.
"""

from __future__ import annotations

import argparse
import json

import torch

from clarm.bench import BenchConfig, run_bench, stream_epoch_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=12)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--sim-runs", type=int, default=4)
    parser.add_argument("--particles", type=int, default=10_000)
    parser.add_argument("--observed", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream", default=None, help="HDF5 file: time one streamed epoch")
    parser.add_argument("--block-runs", type=int, default=16)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stream:
        result = stream_epoch_bench(args.stream, block_runs=args.block_runs)
    else:
        result = run_bench(BenchConfig(modules=args.modules, resolution=args.resolution,
                                       sim_runs=args.sim_runs, particles=args.particles,
                                       observed=args.observed, seed=args.seed))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
