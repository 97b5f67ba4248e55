"""Scan and match (cached on disk) every PSBPhaseCorrection-v0 grid setting.

Training and evaluation read the cache; this only moves the one-time cost (per setting: a
matching with space charge and 12 x 2 stretch trackings) out of the timed runs.
Usage: python packages/beamenv/experiments/prewarm_scans.py [--fidelity fast]
"""

from __future__ import annotations

import argparse
import json
import time

from beamenv.envs.correction import PSBPhaseCorrectionEnv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fidelity", default="fast")
    parser.add_argument("--reverse", action="store_true",
                        help="Last setting first (a second process meets the first halfway).")
    args = parser.parse_args()
    env = PSBPhaseCorrectionEnv(fidelity=args.fidelity)
    start = time.perf_counter()
    order = list(enumerate(env.settings))
    for i, setting in (order[::-1] if args.reverse else order):
        t0 = time.perf_counter()
        env.matched_beam_for(setting)  # cached on disk too (the scan may already be cached)
        res = env.optimum_for(setting)
        print(json.dumps({"i": i, "setting": setting.as_dict(), "best_phi2_rad": res.best_phi2_rad,
                          "best_bunching": res.best_bunching,
                          "seconds": round(time.perf_counter() - t0, 2)}), flush=True)
    print(json.dumps({"settings": len(env.settings),
                      "total_s": round(time.perf_counter() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
