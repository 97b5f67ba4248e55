"""Benchmark of the calo package: simulator and generator throughput (showers/s) as JSON.

    .venv/bin/python tools/bench_calo.py [--device cpu] [--bf16] [--seconds 2] [--threads 2]
        [-o bench.json]

Same figures as ``calo bench``.  The simulator is the baseline measured in the same process;
each model is timed at batch 1, 128, 1024 and 10,000, with its ratio to the simulator and, for
CaloGAN, the fraction of the fp32 FLOP limit (generator FLOPs vs a measured 2048^2 matmul).
"""

from __future__ import annotations

import argparse
import json
import sys

from calo.bench import run_benchmark
from physml_core.config import save_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", default="1,128,1024,10000")
    parser.add_argument("--models", default="vae,gan")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--bf16", action="store_true", help="also time bf16 inference")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("-o", "--output", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    result = run_benchmark(args.device, sizes, models, args.seconds, args.bf16,
                           threads=args.threads)
    if args.output:
        save_json(args.output, result)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
