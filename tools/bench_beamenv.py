"""Benchmark of beamenv: prints JSON figures (see beamenv.bench for what is measured).

Usage: .venv/bin/python tools/bench_beamenv.py [--presets fast,medium,high] [--steps 5]
"""

from __future__ import annotations

import argparse
import json

from beamenv.bench import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="fast,medium,high")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--intensity", type=float, default=8e12)
    parser.add_argument("--vector-envs", default="1,2")
    args = parser.parse_args()
    presets = tuple(p for p in args.presets.split(",") if p)
    sizes = tuple(int(v) for v in args.vector_envs.split(",") if v)
    print(json.dumps(run_bench(presets, args.steps, args.intensity, sizes), indent=2))


if __name__ == "__main__":
    main()
