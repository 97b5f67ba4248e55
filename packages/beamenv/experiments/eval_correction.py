"""Evaluate policies on held-out PSBPhaseCorrection-v0 episodes (item 4 of issue 14).

Every policy runs the same episodes: ``env.reset(seed=s)`` with ``s`` from lstm_td3's held-out
``eval`` seed stream (run slot 0, disjoint from every training and test seed), so the machine
setting and the hidden phase offset of episode i are the same for all.  Policies:

* ``ckpt:<run dir or file>``: a trained LSTM-TD3 / TD3 actor (deterministic, history as in
  training);
* ``scan``: steers to the scanned optimum (knows Phi_opt from the env's scan: 12 trial phases x
  2 stretches of tracking per setting, i.e. 24 trackings before the first step, against one per
  step for the agent);
* ``pi``: steers to Phi_2 = pi (the bunch-lengthening setting of a stationary bucket) and holds;
* ``random``: uniform increments.

Per episode it records |phase error| (wrapped Phi_2 - Phi_opt, rad) after every step and the
summed reward; the JSON has them all plus medians and quartiles.  ``--trace`` also saves the
profiles and phase errors of episode 0 for ``beamenv plot --trace``.

Usage: python packages/beamenv/experiments/eval_correction.py POLICY... --episodes 20 -o out.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import beamenv  # noqa: F401  (registers the ids)
from physml_core.atomic import atomic_path


def _policy(name: str, env: Any, rng: np.random.Generator):
    base = env.unwrapped
    step_rad = base.max_increment_rad
    if name.startswith("ckpt:"):
        from lstm_td3.artifacts import load_agent
        from lstm_td3.history import ActingHistory

        agent, cfg = load_agent(name[5:])
        L = cfg.agent.max_hist_len
        state: dict[str, Any] = {}

        def reset() -> None:
            state["hist"] = ActingHistory(1, agent.obs_dim, agent.act_dim, L)

        def act(obs: np.ndarray, info: dict) -> np.ndarray:
            a = agent.act(obs[None], state["hist"])
            state["hist"].push(obs[None], a)
            return a[0]

        return reset, act, {"env_kwargs": cfg.env_kwargs, "steps": None}
    if name == "scan":
        def act(obs: np.ndarray, info: dict) -> np.ndarray:
            return np.array([np.clip(-info["phase_error_rad"] / step_rad, -1, 1)], np.float32)
    elif name == "pi":
        def act(obs: np.ndarray, info: dict) -> np.ndarray:
            off = (info["phi2_rad"] - math.pi + math.pi) % (2 * math.pi) - math.pi
            return np.array([np.clip(-off / step_rad, -1, 1)], np.float32)
    elif name == "random":
        def act(obs: np.ndarray, info: dict) -> np.ndarray:
            return rng.uniform(-1, 1, size=1).astype(np.float32)
    else:
        raise SystemExit(f"Error: unknown policy {name!r}")
    return (lambda: None), act, {}


def evaluate(name: str, episodes: int, env: Any, trace: bool) -> dict[str, Any]:
    """Run ``episodes`` held-out episodes of policy ``name`` in ``env`` (shared between
    policies, so matched bunches are built once per setting)."""
    from lstm_td3.seeding import stream_seed

    rng = np.random.default_rng(12345)
    reset, act, _ = _policy(name, env, rng)
    errors, returns, tr = [], [], {}
    start = time.perf_counter()
    for i in range(episodes):
        obs, info = env.reset(seed=stream_seed("eval", 0, i))
        reset()
        err, total, done = [abs(info["phase_error_rad"])], 0.0, False
        profiles = [obs[:64].tolist()]
        while not done:
            a = act(obs, info)
            obs, r, term, trunc, info = env.step(a)
            err.append(abs(info["phase_error_rad"]))
            total += float(r)
            profiles.append(obs[:64].tolist())
            done = term or trunc
        errors.append(err)
        returns.append(total)
        if trace and i == 0:
            tr = {"policy": name, "seed": stream_seed("eval", 0, 0), "profiles": profiles,
                  "abs_phase_error_rad": err, "setting": info.get("setting"),
                  "optimum_phi2_rad": info["optimum_phi2_rad"], "return": total}
    e = np.array(errors)
    final, at10 = e[:, -1], e[:, min(10, e.shape[1] - 1)]
    ret = np.array(returns)

    def q(x: np.ndarray) -> list[float]:
        return [float(v) for v in np.percentile(x, [25, 50, 75])]

    return {"policy": name, "episodes": episodes, "seconds": time.perf_counter() - start,
            "final_abs_error_q25_med_q75": q(final), "step10_abs_error_q25_med_q75": q(at10),
            "frac_within_0.2rad_at_step10": float(np.mean(at10 < 0.2)),
            "frac_within_0.2rad_final": float(np.mean(final < 0.2)),
            "return_q25_med_q75": q(ret), "returns": ret.tolist(),
            "abs_errors": e.tolist(), "trace": tr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--env-kwargs", default="{}")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    kwargs = json.loads(args.env_kwargs)
    env = gym.make("beamenv/PSBPhaseCorrection-v0", **kwargs)
    results = [evaluate(p, args.episodes, env, args.trace) for p in args.policies]
    env.close()
    with atomic_path(args.output) as tmp:
        tmp.write_text(json.dumps(results) + "\n")
    for r in results:
        print(json.dumps({k: v for k, v in r.items()
                          if k not in ("returns", "abs_errors", "trace")}), flush=True)


if __name__ == "__main__":
    main()
