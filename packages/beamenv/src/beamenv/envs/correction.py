"""``beamenv/PSBPhaseCorrection-v0``: find the best Phi_2 for a fixed machine setting.

The LSTM-TD3 fork's task made physical.  Each episode draws a machine setting from a grid (total
RF voltage V1 + V2, ratio r = V2 / V1, acceleration level sin phi_s = dE_s / V1 which fixes
dB/dt, and the bucket filling factor, all at the 160 MeV injection energy), matches a bunch
to it at Phi_2 = pi, and hides a random phase offset: the episode starts at
Phi_2 = Phi_opt + U(-pi, pi).  In ``n_steps`` (default 30) steps the agent adds increments
a * ``max_increment_rad`` (a in [-1, 1], clipped; default pi / 4 as in the fork) and BLonD tracks
``turns_per_step`` turns after each.  Phi_opt is not a lookup table: it is found by the
environment's own scan (:func:`beamenv.scan.scan_phase`) on first use of a setting and cached in
memory and on disk (``$BEAMENV_CACHE_DIR`` or ``~/.cache/physml/beamenv/scans``).

Observation: ``n_bins`` line-density values (1 = uniform over the period), then
[V1 / 10 kV, r, sin phi_s, filling factor].  There is no step counter in the observation: the
task (hold the phase at the optimum) does not end after ``n_steps``; the episode is cut there by
a time limit, so the last step is ``truncated`` (not terminal) and a learner bootstraps from an
observation of the same kind as all others.  ``profile_noise`` adds Gaussian measurement noise
(sigma = ``profile_noise`` x the profile peak) to the observed profile.
Reward: B_f / B_f(Phi_opt) - 1 (about 0 at the optimum, negative elsewhere) minus
``loss_penalty`` times the lost fraction minus ``emittance_penalty`` times the emittance growth
in the step relative to the emittance after the reset stretch (the 90 % orbit area in the bucket
the agent set, :meth:`beamenv.bucket.Bucket.emittance_eVs`): filamenting the bunch to lengthen
it costs what it gains.  ``info["phase_error_rad"]`` is Phi_2 - Phi_opt wrapped to [-pi, pi)
(for evaluation only; the reward does not use it).  The bunch is matched with the intensity
effects of the tracking (space charge), so the scan that defines Phi_opt sees no mismatch
transient.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import BeamEnvError
from ..fidelity import Fidelity, get_fidelity
from ..machine import PROTON_MASS_EV, CyclePrograms, PSBRing, momentum_from_ek
from ..scan import PhaseScanResult, scan_phase, trial_phases
from ..sim import BeamSimulator, IntensityEffects
from ._common import (
    action_space,
    add_profile_noise,
    check_action,
    check_finite,
    check_positive_int,
    observation_space,
    profile_observation,
    resonator_parameters,
    wrap_phase,
    wrap_signed,
)

__all__ = ["MachineSetting", "PSBPhaseCorrectionEnv", "scan_cache_dir"]

N_EXTRA = 4
_SCAN_CACHE: dict[str, PhaseScanResult] = {}


def scan_cache_dir() -> Path:
    root = os.environ.get("BEAMENV_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "scans"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "physml" / "beamenv" / "scans"


class MachineSetting(tuple):
    """(total_voltage_V, ratio, sin_phi_s, filling_factor) of one episode."""

    __slots__ = ()

    def __new__(cls, total_voltage_V: float, ratio: float, sin_phi_s: float,
                filling_factor: float) -> MachineSetting:
        return super().__new__(cls, (float(total_voltage_V), float(ratio), float(sin_phi_s),
                                     float(filling_factor)))

    @property
    def v1_V(self) -> float:
        return self[0] / (1.0 + self[1])

    @property
    def v2_V(self) -> float:
        return self[1] * self.v1_V

    def as_dict(self) -> dict[str, float]:
        return {"total_voltage_V": self[0], "ratio": self[1], "sin_phi_s": self[2],
                "filling_factor": self[3]}


class PSBPhaseCorrectionEnv(gym.Env):
    """Gymnasium environment: correct a hidden Phi_2 offset (see the module docstring).

    Args:
        fidelity: preset name, :class:`Fidelity` or dict of overrides (default ``"fast"``).
        n_steps: steps per episode (default 30).
        n_bins: observation profile bins (default 64).
        max_increment_rad: largest phase change per step (default pi / 4).
        total_voltages_V, ratios, sin_phi_s_levels, filling_factors: the setting grid; one value
            of each is drawn per episode.
        ek_eV: kinetic energy (default 160 MeV, injection, where space charge is strongest).
        intensity, space_charge, space_charge_g, resonator, gamma_t: as in PSBPhaseCycle-v0.
        scan_points: trial phases of the optimum scan (default 12).
        loss_penalty, emittance_penalty, profile_noise, failure_penalty, match_timeout_s,
            backend, render_mode: as in PSBPhaseCycle-v0.
        disk_cache: keep scanned optima on disk (default True).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4, "machine": "CERN PS Booster",  # noqa: RUF012
                "cern.machine": "PSB"}

    def __init__(self, *, fidelity: str | Fidelity | dict = "fast", n_steps: int = 30,
                 n_bins: int = 64, max_increment_rad: float = math.pi / 4,
                 total_voltages_V: tuple[float, ...] = (6e3, 10e3, 14e3, 18e3),
                 ratios: tuple[float, ...] = (0.25, 0.5, 0.75),
                 sin_phi_s_levels: tuple[float, ...] = (0.0, 0.15, 0.3),
                 filling_factors: tuple[float, ...] = (0.5, 0.7), ek_eV: float = 160e6,
                 intensity: float = 8e12, space_charge: bool = True,
                 space_charge_g: float = 2.0,
                 resonator: tuple[float, float, float] | None = None, gamma_t: float = 4.1,
                 scan_points: int = 12, loss_penalty: float = 10.0,
                 emittance_penalty: float = 2.0, profile_noise: float = 0.0,
                 failure_penalty: float = 5.0, match_timeout_s: float = 30.0,
                 backend: str | None = None, disk_cache: bool = True,
                 render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise BeamEnvError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.fidelity = get_fidelity(fidelity)
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.n_bins = check_positive_int("n_bins", n_bins, minimum=8)
        self.max_increment_rad = check_finite("max_increment_rad", max_increment_rad, 0.0,
                                              math.pi)
        grids = {}
        for name, values, low, high in (("total_voltages_V", total_voltages_V, 1e2, 1e5),
                                        ("ratios", ratios, 0.0, 2.0),
                                        ("sin_phi_s_levels", sin_phi_s_levels, 0.0, 0.6),
                                        ("filling_factors", filling_factors, 0.05, 0.95)):
            vals = tuple(check_finite(name, v, low, high) for v in np.atleast_1d(values))
            if not vals:
                raise BeamEnvError(f"{name} must not be empty")
            grids[name] = vals
        self.settings = [MachineSetting(*s) for s in itertools.product(
            grids["total_voltages_V"], grids["ratios"], grids["sin_phi_s_levels"],
            grids["filling_factors"])]
        self.ek_eV = check_finite("ek_eV", ek_eV, 1e6, 1e11)
        self.ring = PSBRing(gamma_t=check_finite("gamma_t", gamma_t, 1.0),
                            intensity=check_finite("intensity", intensity, 0.0, 5e13))
        self.effects = IntensityEffects(space_charge=bool(space_charge),
                                        space_charge_g=space_charge_g,
                                        resonator=resonator_parameters(resonator))
        self.scan_points = check_positive_int("scan_points", scan_points, minimum=3)
        self.loss_penalty = check_finite("loss_penalty", loss_penalty, 0.0)
        self.emittance_penalty = check_finite("emittance_penalty", emittance_penalty, 0.0)
        self.profile_noise = check_finite("profile_noise", profile_noise, 0.0, 1.0)
        self.failure_penalty = check_finite("failure_penalty", failure_penalty, 0.0)
        self.match_timeout_s = check_finite("match_timeout_s", match_timeout_s, 0.1)
        self.backend = backend
        self.disk_cache = bool(disk_cache)
        self.action_space = action_space()
        self.observation_space = observation_space(self.n_bins, N_EXTRA)
        self._sims: dict[MachineSetting, BeamSimulator] = {}
        self._beams: dict[MachineSetting, tuple[np.ndarray, np.ndarray]] = {}
        self._setting: MachineSetting | None = None
        self._done = True
        self._eps0 = self._eps = 1.0
        self._last_obs: np.ndarray | None = None

    # ------------------------------------------------------------------ machine setting
    def programs_for(self, setting: MachineSetting) -> CyclePrograms:
        """Constant voltages and a linear momentum ramp giving dE_s = sin_phi_s * V1 per turn."""
        p0 = float(momentum_from_ek(self.ek_eV))
        t_rev = float(self.ring.revolution_period_s(p0))
        beta = p0 / math.hypot(p0, PROTON_MASS_EV)
        gain = setting[2] * setting.v1_V
        duration = (self.n_steps + 4) * self.fidelity.turns_per_step * t_rev * 1.05
        t = np.linspace(0.0, duration, 64)
        momentum = p0 + gain / (beta * t_rev) * t
        return CyclePrograms(t, momentum, np.full(t.size, setting.v1_V),
                             np.full(t.size, setting.v2_V))

    def simulator_for(self, setting: MachineSetting) -> BeamSimulator:
        if setting not in self._sims:
            self._sims[setting] = BeamSimulator(self.ring, self.programs_for(setting),
                                                self.fidelity, self.effects, self.backend)
        return self._sims[setting]

    def matched_beam_for(self, setting: MachineSetting) -> tuple[np.ndarray, np.ndarray]:
        """Bunch matched at Phi_2 = pi with emittance = filling factor x bucket area (with the
        tracking's intensity effects; 1-3 s of CPU with space charge).  Cached in memory and,
        with ``disk_cache``, on disk next to the scans (``.npz``, same key), since it does not
        depend on the agent."""
        if setting not in self._beams:
            path = scan_cache_dir() / f"{self._scan_key(setting)}.beam.npz"
            if self.disk_cache and path.is_file():
                try:
                    with np.load(path) as data:
                        self._beams[setting] = (np.array(data["dt_s"]), np.array(data["de_eV"]))
                    return self._beams[setting]
                except (OSError, ValueError, KeyError):
                    pass  # corrupt cache entry: match again and overwrite
            from ..bucket import Bucket

            sim = self.simulator_for(setting)
            bucket = Bucket(sim.state_at(0.0, math.pi))
            if not bucket.valid:
                raise BeamEnvError(f"setting {setting.as_dict()} has no RF bucket")
            seed = int(hashlib.sha1(repr(tuple(setting)).encode()).hexdigest()[:8], 16)
            beam = sim.matched_beam(
                0.0, math.pi, bucket.emittance_to_fill(setting[3]),
                self.fidelity.n_macroparticles, seed=seed, timeout_s=self.match_timeout_s)
            self._beams[setting] = beam
            if self.disk_cache:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
                    with os.fdopen(fd, "wb") as fh:
                        np.savez(fh, dt_s=beam[0], de_eV=beam[1])
                    os.replace(tmp, path)
                except OSError:
                    pass  # a read-only cache only costs a matching next time
        return self._beams[setting]

    def _scan_key(self, setting: MachineSetting) -> str:
        payload = json.dumps({"setting": list(setting), "ek": self.ek_eV,
                              "ring": self.ring.summary(), "effects": repr(self.effects),
                              "fidelity": repr(self.fidelity), "points": self.scan_points,
                              "version": 2}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:16]

    def optimum_for(self, setting: MachineSetting) -> PhaseScanResult:
        """The scanned optimum of ``setting`` (cached in memory and on disk)."""
        key = self._scan_key(setting)
        if key in _SCAN_CACHE:
            return _SCAN_CACHE[key]
        path = scan_cache_dir() / f"{key}.json"
        if self.disk_cache and path.is_file():
            try:
                result = PhaseScanResult.from_dict(json.loads(path.read_text()))
                _SCAN_CACHE[key] = result
                return result
            except (OSError, ValueError, KeyError):
                pass  # corrupt cache entry: rescan and overwrite
        dt, de = self.matched_beam_for(setting)
        result = scan_phase(self.simulator_for(setting), dt, de, 0.0,
                            trial_phases(self.scan_points), loss_penalty=self.loss_penalty)
        _SCAN_CACHE[key] = result
        if self.disk_cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                with os.fdopen(fd, "w") as fh:
                    json.dump(result.to_dict(), fh)
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only cache only costs a rescan next time
        return result

    # ------------------------------------------------------------------ internals
    def _observation(self, dt: np.ndarray) -> np.ndarray:
        setting = self._setting
        assert setting is not None
        sim = self.simulator_for(setting)
        state = sim.state_at(self._t, self._phi2)
        prof = profile_observation(dt, state.t_rev_s, self.n_bins, self._n_initial)
        prof = add_profile_noise(prof, self.profile_noise, self.np_random)
        extra = np.array([setting.v1_V / 10e3, setting[1], setting[2], setting[3]])
        return np.concatenate([np.minimum(prof, self.n_bins),
                               np.clip(extra, -2.0, 2.0)]).astype(np.float32)

    def _track(self, phi2: float):
        sim = self.simulator_for(self._setting)  # type: ignore[arg-type]
        res = sim.track(self._dt, self._de, self._t, phi2)
        self._t += self.fidelity.turns_per_step * float(
            self.ring.revolution_period_s(sim.programs.momentum_at(self._t)))
        return res

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        if "setting" in options:
            setting = MachineSetting(*options.pop("setting"))
        else:
            setting = self.settings[int(self.np_random.integers(len(self.settings)))]
        offset = float(self.np_random.uniform(-math.pi, math.pi))
        if "phase_offset_rad" in options:
            offset = check_finite("phase_offset_rad", options.pop("phase_offset_rad"))
        if options:
            raise BeamEnvError(f"unknown reset options: {', '.join(sorted(options))}")
        self._setting = setting
        self._optimum = self.optimum_for(setting)
        dt, de = self.matched_beam_for(setting)
        self._dt, self._de = dt.copy(), de.copy()
        self._n_initial = dt.size
        self._t = 0.0
        self._k = 0
        self._phi2 = wrap_phase(self._optimum.best_phi2_rad + offset)
        res = self._track(self._phi2)  # the beam already feels the wrong phase
        self._dt, self._de = res.dt_s, res.de_eV
        self._eps0 = self._eps = max(res.emittance_eVs, 1e-12)
        self._done = False
        obs = self._observation(self._dt)
        self._last_obs = obs
        return obs, {"setting": setting.as_dict(), "phi2_rad": self._phi2,
                     "optimum_phi2_rad": self._optimum.best_phi2_rad,
                     "phase_error_rad": wrap_signed(self._phi2 - self._optimum.best_phi2_rad)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise BeamEnvError("the episode has ended: call reset() before step()")
        a, clipped = check_action(action)
        phi2 = wrap_phase(self._phi2 + a * self.max_increment_rad)
        info: dict[str, Any] = {"phi2_rad": phi2, "action_clipped": clipped, "step": self._k,
                                "optimum_phi2_rad": self._optimum.best_phi2_rad,
                                "phase_error_rad": wrap_signed(
                                    phi2 - self._optimum.best_phi2_rad)}
        try:
            res = self._track(phi2)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # BLonD failure mid-episode: end it, never crash the caller
            self._done = True
            info["blond_error"] = f"{type(exc).__name__}: {exc}"
            assert self._last_obs is not None
            return self._last_obs, -self.failure_penalty, True, False, info
        lost_fraction = res.n_lost / self._n_initial
        self._dt, self._de, self._phi2 = res.dt_s, res.de_eV, phi2
        self._k += 1
        bunching = float(np.mean(res.bunching)) if res.bunching.size else 0.0
        growth = (res.emittance_eVs - self._eps) / self._eps0 if self._dt.size else 0.0
        if self._dt.size:
            self._eps = res.emittance_eVs
        reward = bunching / max(self._optimum.best_bunching, 1e-9) - 1.0
        reward -= self.loss_penalty * lost_fraction + self.emittance_penalty * growth
        terminated = bool(self._dt.size == 0)
        truncated = bool(self._k >= self.n_steps and not terminated)
        self._done = terminated or truncated
        obs = self._observation(self._dt) if self._dt.size else np.zeros(
            self.n_bins + N_EXTRA, np.float32)
        self._last_obs = obs
        info.update({"bunching_factor": bunching, "lost_fraction_step": lost_fraction,
                     "optimum_bunching_factor": self._optimum.best_bunching,
                     "emittance_eVs": self._eps, "emittance_growth": growth})
        return obs, float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._setting is None:
            return None
        from ..bucket import Bucket
        from ..render import render_beam

        bucket = Bucket(self.simulator_for(self._setting).state_at(self._t, self._phi2))
        s = self._setting
        return render_beam(self._dt, self._de, bucket, n_bins=self.n_bins,
                           title=f"Vt = {s[0] / 1e3:.0f} kV, r = {s[1]:.2f}, "
                                 f"sin phi_s = {s[2]:.2f}, step {self._k}/{self.n_steps}")
