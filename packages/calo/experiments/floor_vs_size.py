"""The FPD / KPD floor (two independent samples of one distribution) against the sample size.

Usage::

    calo simulate -n 40000 -o a.h5 --seed 201
    calo simulate -n 40000 -o b.h5 --seed 202
    python packages/calo/experiments/floor_vs_size.py a.h5 b.h5 [--sizes 5000,10000,20000,40000]

For each size N it takes disjoint slices of N rows (at most two per size, rows ``[k N, (k+1) N)``
of both files), computes CaloChallenge's 16 high-level features and scores the slice of the
first file against the slice of the second with ``calo.metrics.fpd`` (as ``calo evaluate``
calls it: ``min_samples=10000``) and ``calo.metrics.kpd`` (batch ``min(N, 10000)``).  Prints
one JSON line per slice pair (values x 1e3, as the README quotes them).

JetNet's FPD extrapolates bootstrap batches drawn *with replacement* from the two fixed samples
to 1/N_batch = 0, i.e. to the Frechet distance between the two samples' own distributions,
which for finite samples is positive (of order d / N); its quoted error is the fit's and does not
include how much that distance varies from one pair of samples to the next.  This script
measures both effects.
"""

from __future__ import annotations

import argparse
import json

from calo.data import read_showers
from calo.metrics import fpd, kpd
from calo.observables import high_level_features_cc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("first", help="CaloGAN HDF5 file (reference side)")
    parser.add_argument("second", help="an independent CaloGAN HDF5 file of the same kind")
    parser.add_argument("--sizes", default="5000,10000,20000,40000",
                        help="comma-separated sample sizes N (rows per slice)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    fa = high_level_features_cc(read_showers(args.first))
    fb = high_level_features_cc(read_showers(args.second))
    rows = min(len(fa), len(fb))
    if max(sizes) > rows:
        raise SystemExit(f"error: --sizes asks for {max(sizes)} rows but the files hold {rows}; "
                         "simulate larger files or pass smaller sizes")
    for n in sizes:
        for part in range(min(2, rows // n)):
            sl = slice(part * n, (part + 1) * n)
            f_val, f_err = fpd(fa[sl], fb[sl], min_samples=10000)
            k_val, k_err = kpd(fa[sl], fb[sl], batch_size=min(n, 10000))
            print(json.dumps({"n": n, "slice": part, "fpd_x1e3": 1e3 * f_val,
                              "fpd_error_x1e3": 1e3 * f_err, "kpd_x1e3": 1e3 * k_val,
                              "kpd_error_x1e3": 1e3 * k_err}), flush=True)


if __name__ == "__main__":
    main()
