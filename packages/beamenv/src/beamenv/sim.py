"""BLonD tracking of a PSB bunch through stretches of the machine programs.

A stretch of ``n`` turns starting at cycle time ``t`` uses BLonD's ``Ring`` / ``RFStation`` /
``Beam`` / ``Profile`` / tracker (and the induced-voltage objects) for exactly those turns, with
the real per-turn momentum and voltage programs (so the synchronous phase and energy gain are
the real ones), tracks the given particles and returns them.  Nothing in those objects depends
on the action except the Phi_2 row of ``RFStation.phi_rf`` and the particles, so they are built
once per (programme, start time, turns) and kept in a process-wide LRU cache
(:data:`STRETCH_CACHE_SIZE` entries); a reuse rewinds the turn counter, writes Phi_2 and loads
the particles.  The environments chain stretches with :func:`beamenv.bucket.transfer_beam`.

BLonD is imported lazily (it takes about 5 s) after :func:`beamenv.backend.ensure_backend`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import signal
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from .backend import ensure_backend
from .bucket import Bucket, RFState, bunching_factors, cached_bucket, line_densities
from .errors import BeamEnvError, MatchingTimeoutError
from .fidelity import Fidelity
from .machine import PROTON_MASS_EV, Z0_OHM, CyclePrograms, PSBRing

__all__ = ["MACHINE_CACHE_SIZE", "STRETCH_CACHE_SIZE", "BeamSimulator", "IntensityEffects",
           "StretchResult"]

#: BLonD object sets (one per stretch) kept per process, least recently used dropped first.
#: About 0.15 MB each (the particle arrays are not kept).
STRETCH_CACHE_SIZE = 512
_STRETCHES: OrderedDict[tuple, dict] = OrderedDict()
#: Cycle times whose programme values (momentum, energy gain, voltages) a simulator keeps.
MACHINE_CACHE_SIZE = 4096
_SIM_IDS = itertools.count()


@dataclasses.dataclass(frozen=True)
class IntensityEffects:
    """Collective effects included in the tracking (the beam intensity is ``PSBRing.intensity``).

    Attributes:
        space_charge: longitudinal space charge as a constant imaginary Z/n =
            -Z0 g0 / (2 beta gamma^2) (BLonD ``InductiveImpedance``), updated every turn.
        space_charge_g: geometry factor g0 (2.0 gives -376.73 / (beta gamma^2) ohm).
        resonator: optional broadband resonator ``(R_shunt_ohm, f_res_Hz, Q)`` (BLonD
            ``Resonators`` through ``InducedVoltageFreq``), e.g. a Finemet-like (600, 1.5e6, 1).
    """

    space_charge: bool = True
    space_charge_g: float = 2.0
    resonator: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not np.isfinite(self.space_charge_g) or self.space_charge_g <= 0:
            raise BeamEnvError("space_charge_g must be positive")
        if self.resonator is not None:
            if len(self.resonator) != 3 or not all(np.isfinite(self.resonator)) or min(
                    self.resonator) <= 0:
                raise BeamEnvError("resonator must be (R_shunt_ohm, f_res_Hz, Q), all positive")

    @property
    def any(self) -> bool:
        return self.space_charge or self.resonator is not None


@dataclasses.dataclass
class StretchResult:
    """Outcome of tracking one stretch.

    Attributes:
        dt_s, de_eV: surviving particles after the stretch, shape (N_alive,).
        profiles: line densities sampled in the second half of the stretch,
            shape (n_snapshots, reward_bins), counts per bin over [0, T_rev).
        bunching: bunching factor of each sampled profile, shape (n_snapshots,).
        n_lost: particles lost in this stretch (outside the separatrix at its end).
        end_state: machine state on the last turn.
        end_bucket: its bucket (used for the loss check).
        emittance_eVs: emittance of the surviving particles in ``end_bucket``
            (:meth:`beamenv.bucket.Bucket.emittance_eVs`, 90 % of the particles).
        h_end: their Hamiltonian values in ``end_bucket``, shape (N_alive,).
    """

    dt_s: np.ndarray
    de_eV: np.ndarray
    profiles: np.ndarray
    bunching: np.ndarray
    n_lost: int
    end_state: RFState
    end_bucket: Bucket
    emittance_eVs: float = 0.0
    h_end: np.ndarray | None = None


@contextlib.contextmanager
def _time_limit(seconds: float | None, wall_factor: float = 10.0) -> Iterator[None]:
    """Raise MatchingTimeoutError after ``seconds`` of CPU time of this process, or after
    ``wall_factor`` x ``seconds`` of wall-clock time (main thread only; elsewhere no limit).

    CPU time (``ITIMER_PROF``) is what a hung matching burns (BLonD's bunch-length search loops
    in Python), and it does not fire early on a loaded machine, where a normal matching can
    take many times its CPU time in wall-clock time; the wall-clock backstop catches a hang
    that sleeps.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _alarm(signum: int, frame: object) -> None:
        kind = "CPU" if signum == signal.SIGPROF else "wall-clock"
        raise MatchingTimeoutError(f"bunch matching did not finish within {seconds:g} s of "
                                   f"{kind} time" if kind == "CPU" else
                                   f"bunch matching did not finish within "
                                   f"{wall_factor * seconds:g} s of wall-clock time")

    previous = {sig: signal.signal(sig, _alarm) for sig in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, wall_factor * seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class BeamSimulator:
    """Track a PSB bunch with BLonD along ``programs``.

    Args:
        ring: ring parameters and intensity.
        programs: momentum and voltage programs.
        fidelity: numerical resolution.
        effects: collective effects.
        backend: BLonD backend choice for :func:`beamenv.backend.ensure_backend`.
        reward_bins: bins of the sampled line densities (and bunching factors) over one period,
            the same for every fidelity so that observables are comparable (default 64).
    """

    def __init__(self, ring: PSBRing, programs: CyclePrograms, fidelity: Fidelity,
                 effects: IntensityEffects | None = None, backend: str | None = None,
                 reward_bins: int = 64) -> None:
        self.ring = ring
        self.programs = programs
        self.fidelity = fidelity
        self.effects = effects or IntensityEffects()
        self.reward_bins = int(reward_bins)
        self.backend = ensure_backend(backend)
        t = programs.time_s
        energy = np.hypot(programs.momentum_eV_c, PROTON_MASS_EV)
        self._de_dt = np.gradient(energy, t)  # eV/s
        # (momentum, energy gain, V1, V2) per cycle time: the environments ask for the same
        # few dozen times every episode (see state_at)
        self._machine_at: dict[float, tuple[float, float, float, float]] = {}
        self._snap_turns: dict[tuple[int, int], frozenset[int]] = {}
        self.intensity = ring.intensity
        self._blond = _import_blond()
        self._token = next(_SIM_IDS)  # cache key of this simulator's stretches
        #: Wall-clock seconds the last :meth:`track` spent in BLonD's turn loop (profile,
        #: induced voltage and tracker calls), without the snapshot binning: what plain BLonD
        #: tracking of the same turns costs; the benchmark separates the env's own work by it.
        self.last_tracking_s = 0.0
        #: The same in CPU seconds of this process (``time.process_time``).
        self.last_tracking_cpu_s = 0.0

    @property
    def intensity(self) -> float:
        """Protons in the full bunch (``fidelity.n_macroparticles`` macroparticles); settable
        per episode (randomised intensity) without rebuilding the simulator."""
        return self._intensity

    @intensity.setter
    def intensity(self, value: float) -> None:
        value = float(value)
        if not (np.isfinite(value) and 0.0 <= value <= 5e13):
            raise BeamEnvError(f"intensity must be in [0, 5e13] protons, got {value!r}")
        self._intensity = value
        self.ratio = value / self.fidelity.n_macroparticles  # protons per macroparticle

    @property
    def collective(self) -> bool:
        """Whether tracking (and matching) include intensity effects."""
        return self._intensity > 0 and self.effects.any

    # ------------------------------------------------------------------ machine state
    def energy_gain_eV(self, t_s: float) -> float:
        """Synchronous energy gain per turn (eV) at cycle time ``t_s``."""
        p = float(self.programs.momentum_at(t_s))
        return float(np.interp(t_s, self.programs.time_s, self._de_dt)
                     * self.ring.revolution_period_s(p))

    def state_at(self, t_s: float, phi2_rad: float) -> RFState:
        """Machine state at cycle time ``t_s`` (s) with second-harmonic phase ``phi2_rad``.

        The programme values at ``t_s`` do not depend on the phase; they are kept per time
        (:data:`MACHINE_CACHE_SIZE` times, then the table starts afresh).
        """
        t_s = float(t_s)
        values = self._machine_at.get(t_s)
        if values is None:
            v1, v2 = self.programs.voltages_at(t_s)
            values = (float(self.programs.momentum_at(t_s)), self.energy_gain_eV(t_s),
                      float(v1), float(v2))
            if len(self._machine_at) >= MACHINE_CACHE_SIZE:
                self._machine_at.clear()
            self._machine_at[t_s] = values
        p, gain, v1_V, v2_V = values
        return RFState(self.ring, p, gain, v1_V, v2_V, np.pi, float(phi2_rad))

    # ------------------------------------------------------------------ BLonD objects
    def _objects(self, t_start_s: float, phi2_rad: float, n_turns: int, n_particles: int,
                 with_effects: bool, beam_intensity: float | None = None) -> dict:
        b = self._blond
        p0 = float(self.programs.momentum_at(t_start_s))
        t_rev = float(self.ring.revolution_period_s(p0))
        times = t_start_s + t_rev * np.arange(n_turns + 1)
        momentum = self.programs.momentum_at(times)
        v1, v2 = self.programs.voltages_at(times)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            ring = b.Ring(self.ring.circumference_m, self.ring.alpha_0, momentum, b.Proton(),
                          n_turns)
            rf = b.RFStation(ring, [1, 2], [v1, v2],
                             [np.full(n_turns + 1, np.pi), np.full(n_turns + 1, phi2_rad)],
                             n_rf=2)
            if beam_intensity is None:  # lost macroparticles take their charge with them
                beam_intensity = self.ratio * n_particles
            beam = b.Beam(ring, n_particles, max(beam_intensity, 1.0))
            profile = b.Profile(beam, b.CutOptions(cut_left=0.0, cut_right=t_rev,
                                                   n_slices=self.fidelity.n_slices))
            tiv = None
            if with_effects and self.collective:
                sources = []
                if self.effects.space_charge:
                    z_over_n = (-Z0_OHM * self.effects.space_charge_g
                                / (2.0 * ring.beta[0] * ring.gamma[0] ** 2))
                    sources.append(b.InductiveImpedance(beam, profile, z_over_n, rf))
                if self.effects.resonator is not None:
                    r_s, f_r, q = self.effects.resonator
                    sources.append(b.InducedVoltageFreq(
                        beam, profile, [b.Resonators(r_s, f_r, q)],
                        frequency_resolution=1.0 / (4 * t_rev)))
                tiv = b.TotalInducedVoltage(beam, profile, sources)
            tracker = b.RingAndRFTracker(rf, beam, profile=profile, total_induced_voltage=tiv,
                                         interpolation=tiv is not None)
        return {"ring": ring, "rf": rf, "beam": beam, "profile": profile, "tiv": tiv,
                "tracker": tracker, "t_rev": t_rev}

    def _stretch(self, t_start_s: float, phi2_rad: float, n_turns: int, dt_s: np.ndarray,
                 de_eV: np.ndarray, with_effects: bool) -> dict:
        """The BLonD objects of a stretch, from the cache when they exist, loaded with the
        particles ``(dt_s, de_eV)`` and Phi_2, with the turn counter at 0."""
        effects = with_effects and self.collective
        key = (self._token, float(t_start_s), int(n_turns), effects)
        objs = _STRETCHES.get(key)
        n = int(dt_s.size)
        if objs is None:
            objs = self._objects(t_start_s, phi2_rad, n_turns, n, with_effects=effects)
            _STRETCHES[key] = objs
            while len(_STRETCHES) > STRETCH_CACHE_SIZE:
                _STRETCHES.popitem(last=False)
        else:
            _STRETCHES.move_to_end(key)
            rf = objs["rf"]
            rf.counter[0] = 0
            rf.phi_rf[1, :] = phi2_rad
            rf.dphi_rf[:] = 0.0
        beam, rf = objs["beam"], objs["rf"]
        beam.dt = np.array(dt_s, dtype=float)
        beam.dE = np.array(de_eV, dtype=float)
        beam.n_macroparticles = n
        beam.id = np.arange(1, n + 1, dtype=int)
        beam.intensity = max(self.ratio * n, 1.0)  # lost particles take their charge along
        beam.ratio = self.ratio
        beam.beta, beam.gamma = rf.beta[0], rf.gamma[0]
        beam.energy, beam.momentum = rf.energy[0], rf.momentum[0]
        return objs

    @staticmethod
    def _release(objs: dict) -> None:
        """Drop the particle arrays of a cached stretch (they are copied out)."""
        objs["beam"].dt = objs["beam"].dE = np.empty(0)

    # ------------------------------------------------------------------ matching
    def matched_beam(self, t_s: float, phi2_rad: float, emittance_eVs: float, n_particles: int,
                     seed: int, timeout_s: float | None = 30.0,
                     distribution: str = "parabolic_amplitude", n_iterations: int = 4,
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Bunch matched to the double-harmonic RF potential at ``t_s`` (BLonD's
        ``matched_from_distribution_function``, by emittance: matching by bunch length can hang
        in bunch-shortening settings).

        With intensity effects on (``collective``), the matching includes the same induced
        voltage that tracking applies (space charge, resonator): BLonD iterates
        ``n_iterations`` times between the line density of the distribution and the potential
        well of RF plus induced voltage, so the bunch is matched to the total potential and
        does not start with a mismatch oscillation (measured: rms length drift over one
        synchrotron period 0.5 % at 8e12 protons, against 8 % when matched without space
        charge; ``test_matched_bunch_stays_matched_with_space_charge``).

        Returns:
            ``(dt_s, de_eV)``, shape (n_particles,) each.

        Raises:
            BeamEnvError: emittance larger than the bucket; MatchingTimeoutError: too slow.
        """
        bucket = Bucket(self.state_at(t_s, phi2_rad))
        if not bucket.valid:
            raise BeamEnvError(f"no RF bucket at t = {t_s:.4f} s (energy gain above voltage)")
        if not 0 < emittance_eVs < 0.98 * bucket.bucket_area_eVs:
            raise BeamEnvError(f"emittance {emittance_eVs:.3g} eVs does not fit the bucket "
                               f"({bucket.bucket_area_eVs:.3g} eVs) at t = {t_s:.4f} s")
        # the whole bunch intensity, whatever the number of macroparticles (a particle pool)
        objs = self._objects(t_s, phi2_rad, 1, n_particles, with_effects=True,
                             beam_intensity=self.intensity)
        full = self._blond.FullRingAndRF([objs["tracker"]])
        grid = self.fidelity.match_grid
        tiv = objs["tiv"]
        extra = {} if tiv is None else {"total_induced_voltage": tiv,
                                        "n_iterations": int(n_iterations)}
        with _time_limit(timeout_s), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._blond.matched_from_distribution_function(
                objs["beam"], full, distribution_type=distribution, emittance=emittance_eVs,
                n_points_potential=10 * grid, n_points_grid=grid, seed=int(seed),
                main_harmonic_option="lowest_freq", **extra)
        beam = objs["beam"]
        return np.array(beam.dt, dtype=float), np.array(beam.dE, dtype=float)

    # ------------------------------------------------------------------ tracking
    def track_history(self, dt_s: np.ndarray, de_eV: np.ndarray, t_start_s: float,
                      phi2_rad: float, n_turns: int) -> tuple[np.ndarray, np.ndarray]:
        """Track without collective effects and return every turn's coordinates.

        Returns:
            ``(dt_s, de_eV)`` histories, shape (n_turns + 1, N) each (row 0 = input).
        """
        objs = self._stretch(t_start_s, phi2_rad, int(n_turns), dt_s, de_eV,
                             with_effects=False)
        beam, tracker = objs["beam"], objs["tracker"]
        dts = np.empty((n_turns + 1, dt_s.size))
        des = np.empty_like(dts)
        dts[0], des[0] = dt_s, de_eV
        for turn in range(1, n_turns + 1):
            tracker.track()
            dts[turn], des[turn] = beam.dt, beam.dE
        self._release(objs)
        return dts, des

    def _snapshot_turns(self, n_turns: int, n_snap: int) -> frozenset[int]:
        """Turns (1-based) after which the profile is sampled: ``n_snap`` turns spread over the
        second half of the stretch, ending on the last turn (kept per (n_turns, n_snap))."""
        key = (n_turns, n_snap)
        turns = self._snap_turns.get(key)
        if turns is None:
            first = max(n_turns // 2, n_turns - n_snap * max(n_turns // (2 * n_snap), 1))
            turns = frozenset(np.linspace(first, n_turns, n_snap, endpoint=True).astype(int)
                              .tolist())
            self._snap_turns[key] = turns
        return turns

    def track(self, dt_s: np.ndarray, de_eV: np.ndarray, t_start_s: float, phi2_rad: float,
              n_turns: int | None = None, n_snapshots: int | None = None) -> StretchResult:
        """Track particles for ``n_turns`` (default: the fidelity's turns per step) from cycle
        time ``t_start_s`` with second-harmonic phase ``phi2_rad`` (BLonD convention)."""
        n_turns = int(n_turns or self.fidelity.turns_per_step)
        n_snap = int(n_snapshots or self.fidelity.n_snapshots)
        n = int(dt_s.size)
        if n == 0:
            raise BeamEnvError("no particles left to track")
        objs = self._stretch(t_start_s, phi2_rad, n_turns, dt_s, de_eV, with_effects=True)
        beam, profile, tracker, tiv = objs["beam"], objs["profile"], objs["tracker"], objs["tiv"]
        snap_turns = self._snapshot_turns(n_turns, n_snap)
        snaps = np.empty((len(snap_turns), n))  # arrival times at the snapshot turns
        n_taken = 0
        every = self.fidelity.induced_voltage_every
        snap_s = snap_cpu_s = 0.0
        start, start_cpu = time.perf_counter(), time.process_time()
        for turn in range(1, n_turns + 1):
            if tiv is not None and (turn - 1) % every == 0:
                profile.track()
                tiv.track()
            tracker.track()
            if turn in snap_turns:  # binned after the loop, all snapshots at once
                snap_start, snap_start_cpu = time.perf_counter(), time.process_time()
                np.copyto(snaps[n_taken], beam.dt)
                n_taken += 1
                snap_s += time.perf_counter() - snap_start
                snap_cpu_s += time.process_time() - snap_start_cpu
        self.last_tracking_s = time.perf_counter() - start - snap_s
        self.last_tracking_cpu_s = time.process_time() - start_cpu - snap_cpu_s
        # fixed binning: observables comparable across fidelities
        prof = line_densities(snaps[:n_taken], objs["t_rev"], self.reward_bins)
        dt_out, de_out = beam.dt, beam.dE
        self._release(objs)
        if not (np.all(np.isfinite(dt_out)) and np.all(np.isfinite(de_out))):
            raise FloatingPointError("BLonD produced non-finite particle coordinates")
        t_end = t_start_s + n_turns * objs["t_rev"]
        end_state = self.state_at(t_end, phi2_rad)
        end_bucket = cached_bucket(end_state)
        h = end_bucket.hamiltonian(dt_out, de_out)
        alive = end_bucket.inside(dt_out, de_out, h)
        h_alive = h[alive]
        return StretchResult(dt_out[alive], de_out[alive], prof, bunching_factors(prof),
                             int(n - alive.sum()), end_state, end_bucket,
                             end_bucket.emittance_from_h(h_alive),
                             h_alive)


def _import_blond():
    """Import the BLonD classes used here (after the backend was selected)."""
    import types

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from blond.beam.beam import Beam, Proton
        from blond.beam.distributions import matched_from_distribution_function
        from blond.beam.profile import CutOptions, Profile
        from blond.impedances.impedance import (
            InducedVoltageFreq,
            InductiveImpedance,
            TotalInducedVoltage,
        )
        from blond.impedances.impedance_sources import Resonators
        from blond.input_parameters.rf_parameters import RFStation
        from blond.input_parameters.ring import Ring
        from blond.trackers.tracker import FullRingAndRF, RingAndRFTracker
    return types.SimpleNamespace(
        Beam=Beam, Proton=Proton, matched_from_distribution_function=(
            matched_from_distribution_function), CutOptions=CutOptions, Profile=Profile,
        InducedVoltageFreq=InducedVoltageFreq, InductiveImpedance=InductiveImpedance,
        TotalInducedVoltage=TotalInducedVoltage, Resonators=Resonators, RFStation=RFStation,
        Ring=Ring, FullRingAndRF=FullRingAndRF, RingAndRFTracker=RingAndRFTracker)
