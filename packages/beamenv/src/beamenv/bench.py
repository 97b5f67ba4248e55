"""Benchmark figures: env step time per fidelity, BLonD turns/s, env overhead, vector scaling.

The baseline is plain BLonD tracking of the same beam in the same process: the Ring, RFStation,
Beam, Profile, induced voltage and tracker objects built once (outside the timing) and
``track()`` called turn after turn, induced voltage every ``induced_voltage_every`` turns as in
the env.  ``overhead = (env step time) / (plain BLonD time for the same turns) - 1``, medians of
interleaved measurements, so both see the same machine load.

On a loaded machine the wall-clock medians move by several points from run to run (another
process taking the core during one step and not the other), so two more estimates of the same
overhead come with it: ``env_overhead_cpu``, the same ratio of medians in CPU time of this
process (``time.process_time``: time spent waiting for a core does not count; with one OpenMP
thread that is the work done), and ``env_overhead_paired``, the median over steps of
(step time / plain time of the tracking just before it) - 1 in wall-clock time (each pair sees
nearly the same load).  ``env_own_ms`` is the median of the step time minus the time the step
spent in BLonD's turn loop (``BeamSimulator.last_tracking_s``), i.e. the env's own work (bucket
look-ups, the adiabatic transfer, binning, observation, bookkeeping), and ``env_overhead_own``
= env_own_ms / plain_blond_ms: the overhead without the part of the load noise that falls into
the tracking; ``env_overhead_own_cpu`` is the same in CPU time.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from .backend import ensure_backend
from .fidelity import get_fidelity

__all__ = ["run_bench"]


def _plain_blond_seconds(env: Any, n_turns: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds for ``n_turns`` of plain BLonD tracking of the env's current
    beam (same setup)."""
    sim = env.simulator
    dt, de = env.beam
    objs = sim._objects(float(env.step_times_s[env.current_step]), math.pi, n_turns, dt.size,
                        with_effects=True)
    beam, profile, tracker, tiv = objs["beam"], objs["profile"], objs["tracker"], objs["tiv"]
    beam.dt[:] = dt
    beam.dE[:] = de
    every = sim.fidelity.induced_voltage_every
    start, start_cpu = time.perf_counter(), time.process_time()
    for turn in range(n_turns):
        if tiv is not None and turn % every == 0:
            profile.track()
            tiv.track()
        tracker.track()
    return time.perf_counter() - start, time.process_time() - start_cpu


def _step_time(fidelity: str, n_steps: int, intensity: float) -> dict[str, float]:
    """Median env step time against plain BLonD, interleaved (same load for both).

    One full warm-up episode runs first: it builds the BLonD objects of every stretch and the
    buckets met by Phi_2 = pi, which is the state of the caches after the first episode of a
    training run (every episode passes the same stretches).  Then ``n_steps`` steps with
    Phi_2 = pi (bucket tables from the cache) and ``n_steps`` with random Phi_2 (new bucket
    tables every step) are timed, each next to a plain BLonD tracking of the same turns.
    """
    from .envs.cycle import PSBPhaseCycleEnv

    env = PSBPhaseCycleEnv(fidelity=fidelity, intensity=intensity, randomize=False)
    rng = np.random.default_rng(0)
    cold: list[float] = []
    env.reset(seed=0)
    done = False
    while not done:  # warm-up episode (cold caches: timed for the record)
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        cold.append(time.perf_counter() - start)
        done = terminated or truncated
    out: dict[str, float] = {}
    for policy in ("zero", "random"):
        env.reset(seed=1)
        times, plain, times_cpu, plain_cpu, own, own_cpu = [], [], [], [], [], []
        for _ in range(n_steps):
            wall, cpu = _plain_blond_seconds(env, env.fidelity.turns_per_step)
            plain.append(wall)
            plain_cpu.append(cpu)
            action = (np.zeros(1, np.float32) if policy == "zero"
                      else rng.uniform(-0.3, 0.3, size=1).astype(np.float32))
            start, start_cpu = time.perf_counter(), time.process_time()
            _, _, terminated, truncated, _ = env.step(action)
            times.append(time.perf_counter() - start)
            times_cpu.append(time.process_time() - start_cpu)
            own.append(times[-1] - env.simulator.last_tracking_s)
            own_cpu.append(times_cpu[-1] - env.simulator.last_tracking_cpu_s)
            if terminated or truncated:
                break
        step_s, plain_s = float(np.median(times)), float(np.median(plain))
        suffix = "" if policy == "zero" else "_random_phase"
        out[f"step_ms{suffix}"] = 1e3 * step_s
        out[f"plain_blond_ms{suffix}"] = 1e3 * plain_s
        out[f"env_overhead{suffix}"] = step_s / plain_s - 1.0
        out[f"env_overhead_cpu{suffix}"] = float(np.median(times_cpu) / np.median(plain_cpu)
                                                 - 1.0)
        out[f"env_overhead_paired{suffix}"] = float(np.median(np.array(times) / np.array(plain))
                                                    - 1.0)
        out[f"env_own_ms{suffix}"] = 1e3 * float(np.median(own))
        out[f"env_overhead_own{suffix}"] = float(np.median(own)) / plain_s
        out[f"env_overhead_own_cpu{suffix}"] = float(np.median(own_cpu) / np.median(plain_cpu))
    fid = env.fidelity
    out.update({"step_ms_first_episode": 1e3 * float(np.median(cold)),
                "blond_turns_per_s": fid.turns_per_step / (out["plain_blond_ms"] / 1e3),
                "n_macroparticles": fid.n_macroparticles, "turns_per_step": fid.turns_per_step,
                "real_turns_per_step": env.programs.number_of_turns(env.ring) / env.n_steps,
                "n_slices": fid.n_slices})
    return out


def _vector_scaling(n_envs_list: tuple[int, ...], n_steps: int) -> dict[str, float]:
    import gymnasium as gym

    import beamenv  # noqa: F401

    out: dict[str, float] = {}
    for n in n_envs_list:
        vec = gym.vector.AsyncVectorEnv(
            [lambda: gym.make("beamenv/PSBPhaseCycle-v0", fidelity="fast")] * n)
        try:
            vec.reset(seed=0)
            vec.step(np.zeros((n, 1), np.float32))
            start = time.perf_counter()
            for _ in range(n_steps):
                vec.step(np.zeros((n, 1), np.float32))
            out[f"{n}_envs_steps_per_s"] = n * n_steps / (time.perf_counter() - start)
        finally:
            vec.close()
    return out


def run_bench(presets: tuple[str, ...] = ("fast", "medium", "high"), n_steps: int = 5,
              intensity: float = 8e12, vector_envs: tuple[int, ...] = (1, 2),
              vector_steps: int = 10) -> dict[str, Any]:
    """Measure and return the benchmark figures as a JSON-able dict."""
    info = ensure_backend()
    result: dict[str, Any] = {"backend": info.name, "omp_threads": info.threads,
                              "cpu_count": os.cpu_count(), "intensity": intensity,
                              "space_charge": intensity > 0, "presets": {}}
    for name in presets:
        get_fidelity(name)
        result["presets"][name] = _step_time(name, n_steps, intensity)
    if vector_envs:
        result["vector_env"] = _vector_scaling(tuple(vector_envs), vector_steps)
        base = result["vector_env"].get(f"{vector_envs[0]}_envs_steps_per_s")
        if base:
            result["vector_env"]["speedup_vs_first"] = {
                k: v / base for k, v in result["vector_env"].items() if k.endswith("per_s")}
    fast = result["presets"].get("fast")
    if fast:
        result["goals"] = {"fast_step_ms_max": 50.0, "fast_step_ms": fast["step_ms"],
                           "env_overhead_max": 0.10, "fast_env_overhead": fast["env_overhead"]}
    return result
