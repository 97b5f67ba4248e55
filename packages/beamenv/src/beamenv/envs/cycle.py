"""``beamenv/PSBPhaseCycle-v0``: set the second-harmonic phase Phi_2 along a PSB acceleration cycle.

One episode is one cycle (160 MeV -> 2 GeV, about 811,000 real turns) in ``n_steps`` steps.  The
cycle is compressed: step k stands for the interval [t_k, t_k+1) of the cycle (t_k = k T / n);
BLonD tracks the bunch for ``turns_per_step`` turns (the fidelity preset) at the start of the
interval with the real momentum and voltage programs and the phase chosen by the agent; the
remaining turns of the interval, during which the real machine changes slowly, are replaced by an
adiabatic map (:func:`beamenv.bucket.transfer_beam`) that carries every particle to the next
machine state keeping its phase-space area.  Filamentation and emittance blow-up caused by
phase jumps, and particles lost from the bucket, are therefore carried from step to step.

Actions (Box [-1, 1], shape (1,)): ``action_mode="absolute"`` sets
Phi_2 = pi + a * ``phase_range_rad`` (BLonD convention, Phi_1 = pi below transition, so a = 0 is
the bunch-lengthening setting of a stationary bucket); ``"increment"`` adds
a * ``max_increment_rad`` to the current Phi_2.  Values outside [-1, 1] are clipped to the nearest
limit (``info["action_clipped"]``); NaN or inf raise :class:`~beamenv.errors.BeamEnvError`.

Observation (float32): ``n_bins`` line-density values over one revolution period (1 = uniform
over the period), then [cycle progress k/n, V1 / 10 kV, V2 / V1, (Phi_2 - pi) / pi,
sin phi_s = dE_s / V1, kinetic energy / 2 GeV].

Reward per step: the bunching factor B_f = mean / peak line density (averaged over the profiles
sampled in the second half of the stretch; higher = flatter, longer bunch = lower space-charge
tune spread), minus ``loss_penalty`` times the fraction of the initial macroparticles lost in the
step, minus ``emittance_penalty`` times the emittance growth in the step relative to the
injected emittance, (eps_k+1 - eps_k) / eps_0.  The emittance eps is the phase-space area of the
bucket orbit enclosing 90 % of the particles (:meth:`beamenv.bucket.Bucket.emittance_eVs`),
measured at the end of each tracked stretch in the bucket the agent set.  The growth terms sum
over the cycle to (eps_extraction - eps_0) / eps_0: the bunch at extraction is scored, which is
what the PS downstream needs (its longitudinal acceptance and the blow-up budget), and a phase
jump that filaments the bunch to raise B_f pays the growth back.  Why that cannot be gamed: a
particle's orbit area in a fixed bucket is invariant under tracking, and for a bunch matched to
one bucket the 90 % area measured in any other bucket is at least as large (the matched orbits
are the highest-density region; measured: within 1 % sampling noise for a 0.3 rad jump, +12 %
for 1.5 rad), so a phase change can only keep or raise eps.

Episode end: the cycle end (extraction) is a real terminal state of the task: ``terminated`` is
True after the last step (cycle progress stays in the observation, so the state is Markov and
there is nothing to bootstrap from).  The episode also terminates when more than
``loss_threshold`` of the beam is lost.  ``truncated`` is never set by the env.  A BLonD failure
ends the episode with reward ``-failure_penalty`` and ``info["blond_error"]``.

Randomisation (``randomize=True``, the default; seeded by ``reset(seed=...)``): each episode
draws the bunch intensity, the injected emittance, V2/V1 and a scale of the flat-top V1 (the
programme perturbation; V1 at injection is kept, so matching pools can be shared) from the grids
of :class:`CycleRandomization`.  V1 and V2/V1 are in the observation (an operator reads them);
intensity and emittance are not and must be inferred from the profiles, which is what memory is
for.  ``profile_noise`` adds Gaussian measurement noise (sigma = ``profile_noise`` x the profile
peak, per bin) to the observed profile only (the reward uses the beam).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ..bucket import Bucket, cached_bucket, carry_beam
from ..errors import BeamEnvError
from ..fidelity import Fidelity, get_fidelity
from ..machine import CyclePrograms, PSBRing, default_cycle, ek_from_momentum, load_program
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
)

__all__ = ["CycleRandomization", "EpisodeSettings", "PSBPhaseCycleEnv"]

N_EXTRA = 6
_POOL_FACTOR = 4
_V1_RAMP_S = 0.030  # V1 reaches its flat-top level 30 ms after injection (default programme)


@dataclasses.dataclass(frozen=True)
class EpisodeSettings:
    """Machine and beam of one cycle episode.

    Attributes:
        intensity: protons in the bunch.
        emittance_eVs: injected (matched) longitudinal emittance.
        v2_scale: factor on the programme's V2 (V2/V1 = v2_scale x the configured ratio).
        v1_scale: factor on V1 after injection (reached over the first 30 ms; 1 at injection).
    """

    intensity: float
    emittance_eVs: float
    v2_scale: float = 1.0
    v1_scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class CycleRandomization:
    """Grids the per-episode settings are drawn from (uniformly, independently).

    Discrete grids keep the number of distinct matched bunches and machine programmes small, so
    that they are matched/built once per process and reused (a matching with space charge
    costs about 1-3 s).  Defaults: intensity 0.6-1.2 x the nominal, emittance 0.85-1.15 x the
    nominal, V2/V1 from 0.55 to 0.85 (x 0.75 nominal), flat-top V1 +-10 %.
    """

    intensity_scales: tuple[float, ...] = (0.6, 0.8, 1.0, 1.2)
    emittance_scales: tuple[float, ...] = (0.85, 1.0, 1.15)
    v2_scales: tuple[float, ...] = (0.55 / 0.75, 0.65 / 0.75, 1.0, 0.85 / 0.75)
    v1_scales: tuple[float, ...] = (0.9, 1.0, 1.1)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            values = tuple(float(v) for v in getattr(self, field.name))
            if not values or not all(math.isfinite(v) and 0.0 < v <= 3.0 for v in values):
                raise BeamEnvError(f"randomization {field.name} must be a non-empty tuple of "
                                   f"factors in (0, 3], got {getattr(self, field.name)!r}")
            object.__setattr__(self, field.name, values)

    def draw(self, rng: np.random.Generator, intensity: float, emittance_eVs: float
             ) -> EpisodeSettings:
        def pick(values: tuple[float, ...]) -> float:
            return values[int(rng.integers(len(values)))]

        return EpisodeSettings(intensity * pick(self.intensity_scales),
                               emittance_eVs * pick(self.emittance_scales),
                               pick(self.v2_scales), pick(self.v1_scales))


def perturbed_programs(base: CyclePrograms, v1_scale: float, v2_scale: float) -> CyclePrograms:
    """``base`` with V1 scaled by ``v1_scale`` after injection (linearly over the first 30 ms;
    unchanged at injection) and V2 by ``v1_scale`` x ``v2_scale`` (V2/V1 scaled by v2_scale)."""
    if v1_scale == 1.0 and v2_scale == 1.0:
        return base
    ramp = np.clip(base.time_s / _V1_RAMP_S, 0.0, 1.0)
    f1 = 1.0 + (v1_scale - 1.0) * ramp
    return CyclePrograms(base.time_s, base.momentum_eV_c, base.v1_V * f1,
                         base.v2_V * f1 * v2_scale)


class PSBPhaseCycleEnv(gym.Env):
    """Gymnasium environment: Phi_2 along the PSB cycle (see the module docstring).

    Args:
        fidelity: ``"fast"`` (default), ``"medium"``, ``"high"``, a :class:`Fidelity` or a dict of
            overrides such as ``{"preset": "fast", "turns_per_step": 100}``.
        n_steps: steps per cycle (default 30).
        n_bins: line-density bins in the observation (default 64).
        action_mode: ``"absolute"`` (default) or ``"increment"``.
        phase_range_rad: absolute mode, Phi_2 = pi + a * phase_range_rad (default pi).
        max_increment_rad: increment mode, largest change per step (default pi / 4).
        initial_phi2_rad: Phi_2 at injection, where the bunch is matched (default pi).
        intensity: protons in the bunch (default 8e12; 0 switches collective effects off).
        space_charge: include longitudinal space charge (default True).
        space_charge_g: space-charge geometry factor g0 (default 2).
        resonator: optional broadband resonator ``(R_shunt_ohm, f_res_Hz, Q)``.
        v2_ratio: V2 / V1 of the default programs (default 0.75, as for ISOLDE/TOF beams).
        program_file: CSV/.npz machine programs (see :func:`beamenv.machine.load_program`).
        programs: a :class:`CyclePrograms` (instead of ``program_file``).
        gamma_t: transition gamma (default 4.1).
        emittance_eVs: longitudinal emittance of the matched bunch (default 1.2 eVs).
        loss_penalty: reward penalty per lost fraction of the beam (default 10).
        emittance_penalty: reward penalty per relative emittance growth (default 2; see the
            module docstring: the cycle sum is the growth from injection to extraction).
        loss_threshold: lost fraction that terminates the episode (default 0.2).
        failure_penalty: reward when BLonD fails mid-episode (default 5, given negative).
        match_timeout_s: time limit of the bunch matching at reset (default 30 s).
        randomize: draw intensity, emittance, V2/V1 and V1 per episode (default True; False:
            the nominal ``intensity``, ``emittance_eVs`` and programmes every episode).
        randomization: a :class:`CycleRandomization` or a dict of its fields (the grids).
        profile_noise: relative Gaussian noise on the observed profile (default 0: none).
        backend: BLonD backend, ``"auto"``/``"cpp"``/``"numpy"`` (default: ``$BEAMENV_BACKEND``).
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4, "machine": "CERN PS Booster",  # noqa: RUF012
                "cern.machine": "PSB"}

    def __init__(self, *, fidelity: str | Fidelity | dict = "fast", n_steps: int = 30,
                 n_bins: int = 64, action_mode: str = "absolute",
                 phase_range_rad: float = math.pi, max_increment_rad: float = math.pi / 4,
                 initial_phi2_rad: float = math.pi, intensity: float = 8e12,
                 space_charge: bool = True, space_charge_g: float = 2.0,
                 resonator: tuple[float, float, float] | None = None, v2_ratio: float = 0.75,
                 program_file: str | Path | None = None, programs: CyclePrograms | None = None,
                 gamma_t: float = 4.1, emittance_eVs: float = 1.2, loss_penalty: float = 10.0,
                 emittance_penalty: float = 2.0, loss_threshold: float = 0.2,
                 failure_penalty: float = 5.0, match_timeout_s: float = 30.0,
                 randomize: bool = True,
                 randomization: CycleRandomization | dict | None = None,
                 profile_noise: float = 0.0, backend: str | None = None,
                 render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise BeamEnvError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if action_mode not in ("absolute", "increment"):
            raise BeamEnvError(f"action_mode must be 'absolute' or 'increment', "
                               f"got {action_mode!r}")
        self.render_mode = render_mode
        self.fidelity = get_fidelity(fidelity)
        self.n_steps = check_positive_int("n_steps", n_steps)
        self.n_bins = check_positive_int("n_bins", n_bins, minimum=8)
        self.action_mode = action_mode
        self.phase_range_rad = check_finite("phase_range_rad", phase_range_rad, 0.0, math.pi)
        self.max_increment_rad = check_finite("max_increment_rad", max_increment_rad, 0.0,
                                              math.pi)
        self.initial_phi2_rad = wrap_phase(check_finite("initial_phi2_rad", initial_phi2_rad))
        self.emittance_eVs = check_finite("emittance_eVs", emittance_eVs, 1e-3, 20.0)
        self.loss_penalty = check_finite("loss_penalty", loss_penalty, 0.0)
        self.emittance_penalty = check_finite("emittance_penalty", emittance_penalty, 0.0)
        self.profile_noise = check_finite("profile_noise", profile_noise, 0.0, 1.0)
        self.randomize = bool(randomize)
        if randomization is None:
            randomization = CycleRandomization()
        elif isinstance(randomization, dict):
            try:
                randomization = CycleRandomization(**randomization)
            except TypeError as exc:
                raise BeamEnvError(f"bad randomization: {exc}") from None
        if not isinstance(randomization, CycleRandomization):
            raise BeamEnvError("randomization must be a CycleRandomization, a dict or None")
        self.randomization = randomization
        self.loss_threshold = check_finite("loss_threshold", loss_threshold, 0.0, 1.0)
        self.failure_penalty = check_finite("failure_penalty", failure_penalty, 0.0)
        self.match_timeout_s = check_finite("match_timeout_s", match_timeout_s, 0.1)
        self.ring = PSBRing(gamma_t=check_finite("gamma_t", gamma_t, 1.0),
                            intensity=check_finite("intensity", intensity, 0.0, 5e13))
        if programs is not None and program_file is not None:
            raise BeamEnvError("give either programs or program_file, not both")
        if programs is not None:
            if not isinstance(programs, CyclePrograms):
                raise BeamEnvError("programs must be a beamenv.machine.CyclePrograms")
            self.programs = programs
        elif program_file is not None:
            self.programs = load_program(program_file, self.ring, v2_ratio=v2_ratio)
        else:
            self.programs = default_cycle(self.ring, v2_ratio=check_finite(
                "v2_ratio", v2_ratio, 0.0, 2.0))
        self.effects = IntensityEffects(space_charge=bool(space_charge),
                                        space_charge_g=space_charge_g,
                                        resonator=resonator_parameters(resonator))
        self.backend = backend
        self.action_space = action_space()
        self.observation_space = observation_space(self.n_bins, N_EXTRA)
        self.step_times_s = np.linspace(0.0, self.programs.duration_s, self.n_steps + 1)
        self._sims: dict[tuple[float, float], BeamSimulator] = {}
        self._sim_key = (1.0, 1.0)
        self.episode = EpisodeSettings(self.ring.intensity, self.emittance_eVs)
        self._pools: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._eps0 = self._eps = 0.0
        self._dt = np.empty(0)
        self._de = np.empty(0)
        self._k = 0
        self._phi2 = self.initial_phi2_rad
        self._n_initial = self.fidelity.n_macroparticles
        self._done = True
        self._last_obs: np.ndarray | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def simulator(self) -> BeamSimulator:
        """The BLonD simulator of the current episode's programmes (created on first use:
        imports BLonD, builds its backend; one per programme perturbation, kept)."""
        key = self._sim_key
        if key not in self._sims:
            programs = perturbed_programs(self.programs, *key)
            self._sims[key] = BeamSimulator(self.ring, programs, self.fidelity, self.effects,
                                            backend=self.backend)
        sim = self._sims[key]
        sim.intensity = self.episode.intensity
        return sim

    def phase_from_action(self, a: float, current_phi2: float) -> float:
        """Phi_2 (rad, BLonD convention, in [0, 2 pi)) commanded by a clipped action ``a``."""
        if self.action_mode == "absolute":
            return wrap_phase(math.pi + a * self.phase_range_rad)
        return wrap_phase(current_phi2 + a * self.max_increment_rad)

    def action_from_phase(self, phi2_rad: float) -> float:
        """Absolute-mode action that commands ``phi2_rad`` (inverse of phase_from_action)."""
        if self.action_mode != "absolute" or self.phase_range_rad == 0:
            raise BeamEnvError("action_from_phase needs action_mode='absolute'")
        delta = (phi2_rad - math.pi + math.pi) % (2 * math.pi) - math.pi
        return float(np.clip(delta / self.phase_range_rad, -1.0, 1.0))

    def _bucket(self, k: int, phi2: float) -> Bucket:
        t = min(self.step_times_s[k], self.programs.duration_s)
        return cached_bucket(self.simulator.state_at(t, phi2))

    def _observation(self, dt: np.ndarray, k: int, phi2: float) -> np.ndarray:
        t = self.step_times_s[min(k, self.n_steps)]
        state = self.simulator.state_at(t, phi2)
        prof = profile_observation(dt, state.t_rev_s, self.n_bins, self._n_initial)
        extra = np.array([k / self.n_steps, state.v1_V / 10e3, state.v2_V / state.v1_V,
                          (phi2 - math.pi) / math.pi, state.energy_gain_eV / state.v1_V,
                          float(ek_from_momentum(state.momentum_eV_c)) / 2e9])
        extra = np.clip(extra, -2.0, 2.0)
        prof = add_profile_noise(prof, self.profile_noise, self.np_random)
        return np.concatenate([np.minimum(prof, self.n_bins), extra]).astype(np.float32)

    def _pool(self, phi2: float) -> tuple[np.ndarray, np.ndarray]:
        """Matched particle pool (4 x N) for this episode's injection: keyed by what the
        matching depends on (Phi_2, V2 scale, emittance, intensity; V1 at injection is fixed)."""
        ep = self.episode
        key = (round(phi2, 9), ep.v2_scale, ep.emittance_eVs, ep.intensity)
        if key not in self._pools:
            n = _POOL_FACTOR * self.fidelity.n_macroparticles
            self._pools[key] = self.simulator.matched_beam(
                0.0, phi2, ep.emittance_eVs, n, seed=20_240_917,
                timeout_s=self.match_timeout_s)
        return self._pools[key]

    def advance(self, dt: np.ndarray, de: np.ndarray, k: int, phi2: float) -> dict[str, Any]:
        """Simulate step ``k`` from particles ``(dt, de)`` with Phi_2 = ``phi2`` (no side effects).

        Returns a dict with the particles at the start of step k+1 (``dt``, ``de``), the sampled
        ``bunching`` factors (shape (n_snapshots,)), ``profiles``, ``n_lost`` and
        ``emittance_eVs`` (end of the tracked stretch, in the bucket set by ``phi2``).
        """
        sim = self.simulator
        res = sim.track(dt, de, float(self.step_times_s[k]), phi2)
        n_lost = res.n_lost
        dt_next, de_next = res.dt_s, res.de_eV
        if k + 1 < self.n_steps and dt_next.size:
            old = res.end_bucket
            new = self._bucket(k + 1, phi2)
            # the carried particles only, in the transfer's order (nothing depends on the order)
            dt_next, de_next, lost = carry_beam(dt_next, de_next, old, new, res.h_end)
            n_lost += lost
        return {"dt": dt_next, "de": de_next, "bunching": res.bunching,
                "profiles": res.profiles, "n_lost": n_lost, "emittance_eVs": res.emittance_eVs}

    def reward_of(self, out: dict[str, Any]) -> tuple[float, dict[str, float]]:
        """Reward of a step outcome from :meth:`advance` and its terms (see the module
        docstring): B_f - loss_penalty x lost fraction - emittance_penalty x growth / eps_0."""
        bunching = float(np.mean(out["bunching"])) if out["bunching"].size else 0.0
        lost_fraction = out["n_lost"] / max(self._n_initial, 1)
        growth = (out["emittance_eVs"] - self._eps) / max(self._eps0, 1e-12)
        if not out["dt"].size:  # no beam left: no emittance to score, the loss term does it
            growth = 0.0
        reward = bunching - self.loss_penalty * lost_fraction - self.emittance_penalty * growth
        return reward, {"bunching_factor": bunching, "lost_fraction_step": lost_fraction,
                        "emittance_growth": growth}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        phi2 = self.initial_phi2_rad
        if "initial_phi2_rad" in options:
            phi2 = wrap_phase(check_finite("initial_phi2_rad", options.pop("initial_phi2_rad")))
        if self.randomize:
            episode = self.randomization.draw(self.np_random, self.ring.intensity,
                                              self.emittance_eVs)
        else:
            episode = EpisodeSettings(self.ring.intensity, self.emittance_eVs)
        if "episode" in options:
            fixed = options.pop("episode")
            if isinstance(fixed, EpisodeSettings):
                fixed = dataclasses.asdict(fixed)
            try:
                episode = dataclasses.replace(episode, **dict(fixed))
            except TypeError as exc:
                raise BeamEnvError(f"bad reset option 'episode': {exc}") from None
        if options:
            raise BeamEnvError(f"unknown reset options: {', '.join(sorted(options))}")
        self.episode = episode
        self._sim_key = (episode.v1_scale, episode.v2_scale)
        pool_dt, pool_de = self._pool(phi2)
        idx = np.sort(self.np_random.choice(pool_dt.size, self.fidelity.n_macroparticles,
                                            replace=False))
        self._dt, self._de = pool_dt[idx].copy(), pool_de[idx].copy()
        self._n_initial = self._dt.size
        self._k = 0
        self._phi2 = phi2
        self._done = False
        self._lost_total = 0
        self._eps0 = self._eps = self._bucket(0, phi2).emittance_eVs(self._dt, self._de)
        obs = self._observation(self._dt, 0, phi2)
        self._last_obs = obs
        return obs, {"phi2_rad": phi2, "t_s": 0.0, "n_macroparticles": int(self._dt.size),
                     "backend": self.simulator.backend.name,
                     "episode": dataclasses.asdict(episode), "emittance_eVs": self._eps0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise BeamEnvError("the episode has ended: call reset() before step()")
        a, clipped = check_action(action)
        phi2 = self.phase_from_action(a, self._phi2)
        k = self._k
        info: dict[str, Any] = {"phi2_rad": phi2, "t_s": float(self.step_times_s[k]),
                                "action_clipped": clipped, "step": k}
        try:
            out = self.advance(self._dt, self._de, k, phi2)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # BLonD failure mid-episode: end it, never crash the caller
            self._done = True
            info["blond_error"] = f"{type(exc).__name__}: {exc}"
            assert self._last_obs is not None
            return self._last_obs, -self.failure_penalty, True, False, info
        reward, terms = self.reward_of(out)
        self._dt, self._de = out["dt"], out["de"]
        self._phi2 = phi2
        self._k = k + 1
        self._lost_total += out["n_lost"]
        if self._dt.size:
            self._eps = out["emittance_eVs"]
        total_lost = self._lost_total / self._n_initial
        # extraction (the cycle end) is a true terminal state; so is losing the beam
        terminated = bool(total_lost > self.loss_threshold or self._dt.size == 0
                          or self._k >= self.n_steps)
        truncated = False
        self._done = terminated
        obs = self._observation(self._dt, self._k, phi2) if self._dt.size else np.zeros(
            self.n_bins + N_EXTRA, np.float32)
        self._last_obs = obs
        info.update({**terms, "emittance_eVs": self._eps,
                     "emittance_growth_total": self._eps / max(self._eps0, 1e-12) - 1.0,
                     "lost_fraction_total": total_lost, "cycle_end": self._k >= self.n_steps,
                     "ek_eV": float(ek_from_momentum(self.programs.momentum_at(info["t_s"]))),
                     "turns_tracked": self.fidelity.turns_per_step})
        return obs, float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from ..render import render_beam

        k = min(self._k, self.n_steps)
        bucket = self._bucket(k, self._phi2)
        t_ms = self.step_times_s[k] * 1e3
        return render_beam(self._dt, self._de, bucket,
                           title=f"PSB cycle t = {t_ms:.0f} ms, step {k}/{self.n_steps}",
                           n_bins=self.n_bins)

    # state access for baselines (scan) --------------------------------------------------
    @property
    def beam(self) -> tuple[np.ndarray, np.ndarray]:
        """Current particle coordinates ``(dt_s, de_eV)`` (copies)."""
        return self._dt.copy(), self._de.copy()

    @property
    def current_step(self) -> int:
        return self._k

    @property
    def phi2_rad(self) -> float:
        return self._phi2
