"""Benchmark of lstm_td3: prints JSON figures (see lstm_td3.bench.run_benchmark).

Figures: training env steps/s on Pendulum-v1 (remove_velocity) with 1 and 4 envs at update-to-data
ratio 1, hist_len 5, batch 100; gradient updates/s; replay sampling time per batch with and
without PER at 1e6 capacity; the speed-up of the vectorised history gather over a per-sample
Python loop measured in the same run.

Each layer width (default: the paper's 128 and the 64 units of the README's learning runs) is
also compared with the compute roofline: FLOPs per update counted from the layer sizes over the
fp32 matmul throughput measured in the same process.

Each width is measured with the eager update and the compiled one (``TD3Config.compile``,
torch.compile with inductor) side by side; the compile warm-up is reported separately.

Peers (``--peers-only`` runs just these): our plain TD3 (``--hist-len 0``) and Stable-Baselines3's
TD3 on Pendulum-v1 with the same update schedule, batch and layer sizes, and our LSTM-TD3 at the
paper's settings (128 units, L=5, Pendulum without velocity): env steps/s of whole runs and ms per
update, with ratios against SB3 (lstm_td3.bench.run_peer_benchmark).

    python tools/bench_lstm_td3.py [--quick] [--hidden 64] [--threads 2] [--mode eager]
                                   [--peers-only | --no-peers] [-o figures.json]
"""

from __future__ import annotations

import argparse
import json
import sys

from lstm_td3.bench import run_benchmark, run_peer_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--hidden", type=int, default=None,
                        help="only this layer width (default: 128 and 64)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores)")
    parser.add_argument("--mode", choices=("both", "eager", "compiled"), default="both",
                        help="update paths to measure (default: both)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--peers-only", action="store_true",
                       help="only our TD3 / SB3 TD3 / our paper-setting LSTM-TD3")
    group.add_argument("--no-peers", action="store_true", help="leave the peer section out")
    parser.add_argument("-o", "--output", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    modes = ("eager", "compiled") if args.mode == "both" else (args.mode,)
    if args.peers_only:
        figures = run_peer_benchmark(quick=args.quick, threads=args.threads)
    else:
        figures = run_benchmark(quick=args.quick, hidden=args.hidden, threads=args.threads,
                                modes=modes, peers=not args.no_peers)
    text = json.dumps(figures, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
