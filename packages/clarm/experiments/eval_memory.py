"""Peak memory of one ``clarm evaluate`` (issue #15): the library call behind the CLI, in a
fresh process, with ``max_runs`` (not a CLI option) to vary the number of held-out runs.

Usage (one thread; a model trained for one epoch is enough for memory, not for scores)::

    clarm synthetic --runs 40 --modules 48 --resolution 64 -o syn48.h5
    clarm train cvae --data syn48.h5 --run-dir cvae48 --epochs 1 --max-train-runs 4 --device cpu
    clarm train lstm --data syn48.h5 --cvae cvae48 --run-dir lstm48 --epochs 1 --device cpu
    OMP_NUM_THREADS=1 /usr/bin/time -v python packages/clarm/experiments/eval_memory.py \
        syn48.h5 cvae48 lstm48 eval48 36 conformal 4

Arguments: data, CVAE, LSTM, output folder, held-out runs to evaluate (``max_runs``), the
uncertainty method (ignored by code from before the option existed) and the forecast samples.
Prints one JSON line: held-out runs, wall and CPU seconds, and the process's peak resident
memory (``ru_maxrss``, GiB, torch included).
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time

import torch

import clarm
from clarm.evaluate import EvalConfig, evaluate


def main() -> None:
    data, cvae, lstm, out, max_runs, method, samples = sys.argv[1:8]
    torch.set_num_threads(1)
    kw: dict[str, object] = dict(data=data, cvae=cvae, lstm=lstm, output=out, observed=4,
                                 classifier_epochs=1, max_runs=int(max_runs),
                                 forecast_samples=int(samples), device="cpu")
    if "uncertainty" in {f.name for f in dataclasses.fields(EvalConfig)}:
        kw["uncertainty"] = method
    t0, c0 = time.perf_counter(), time.process_time()
    report = evaluate(EvalConfig(**kw))  # type: ignore[arg-type]
    unc = report.get("forecast_uncertainty", {})
    print(json.dumps({"code": clarm.__file__, "data": data,
                      "held_out_runs": len(report["held_out_runs"]),
                      "method": unc.get("method"), "wall_s": time.perf_counter() - t0,
                      "cpu_s": time.process_time() - c0,
                      "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                      / 1024**2}))


if __name__ == "__main__":
    main()
