"""Benchmark of the alternators package: prints JSON with training seconds per epoch and
sampling sequences per second for the Alternator, VRNN and RNN on the same simulated Lorenz data,
plus the Alternator's speed ratios against both baselines (measured in this process).

    python tools/bench_alternators.py [--device cpu] [--epochs 2] [--n-train 32]
"""

from __future__ import annotations

import argparse
import json

from alternators.bench import BenchConfig, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=32)
    parser.add_argument("--n-steps", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    result = run_benchmark(BenchConfig(device=args.device, epochs=args.epochs,
                                       n_train=args.n_train, n_steps=args.n_steps,
                                       hidden=args.hidden))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
