"""Effect of ``SimConfig.tau_max`` (GFlash's radial parameters frozen beyond tau = t / T).

Usage::

    python packages/calo/experiments/tau_max_effect.py [-n 10000] [--seed 7] [--tau-max 2.5]

Simulates ``n`` e+ showers (1-100 GeV) twice with the same seed: once with ``tau_max`` (our
default 2.5) and once evaluated at any depth (``tau_max=1e9``), as Geant4's GFlash
(``GFlashHomoShowerParameterisation::ComputeRadialParameters``) does.  Prints, per observable
of :func:`calo.observables.shower_observables`, both means and the separation power of one
sample against the other (``calo evaluate``'s binning), as JSON.
"""

from __future__ import annotations

import argparse
import json

from calo.evaluate import observable_edges
from calo.metrics import separation_power
from calo.observables import shower_observables
from calo.sim import TAU_FIT_MAX, SimConfig, simulate_showers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=10000, help="showers per sample")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (both samples)")
    parser.add_argument("--tau-max", type=float, default=TAU_FIT_MAX, help="the clamped sample's")
    args = parser.parse_args()
    clamped = shower_observables(simulate_showers(args.n, SimConfig(seed=args.seed,
                                                                    tau_max=args.tau_max)))
    unlimited = shower_observables(simulate_showers(args.n, SimConfig(seed=args.seed,
                                                                      tau_max=1e9)))
    rows = {}
    for key, a in clamped.items():
        b = unlimited[key]
        rows[key] = {"mean_clamped": float(a.mean()), "mean_unlimited": float(b.mean()),
                     "separation_power": separation_power(a, b, observable_edges(key, a, 1.0))}
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
