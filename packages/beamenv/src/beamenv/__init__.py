"""beamenv: Gymnasium environments on BLonD for CERN PS Booster double-harmonic RF phase control.

Importing ``beamenv`` registers two environment ids with Gymnasium and is cheap (BLonD, which
takes about 5 s to import, is loaded on the first ``reset``)::

    import gymnasium as gym
    import beamenv  # noqa: F401  (registers the ids)

    env = gym.make("beamenv/PSBPhaseCycle-v0", fidelity="fast")
    env = gym.make("beamenv/PSBPhaseCorrection-v0")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .backend import BackendInfo, ensure_backend
from .errors import BackendWarning, BeamEnvError, MatchingTimeoutError, ProgramFileError
from .fidelity import FIDELITY_PRESETS, Fidelity, get_fidelity
from .machine import CyclePrograms, PSBRing, default_cycle, load_program

try:
    __version__ = version("beamenv")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "CORRECTION_ENV_ID",
    "CYCLE_ENV_ID",
    "FIDELITY_PRESETS",
    "BackendInfo",
    "BackendWarning",
    "BeamEnvError",
    "CyclePrograms",
    "Fidelity",
    "MatchingTimeoutError",
    "PSBRing",
    "ProgramFileError",
    "__version__",
    "default_cycle",
    "ensure_backend",
    "get_fidelity",
    "load_program",
    "register_envs",
]

CYCLE_ENV_ID = "beamenv/PSBPhaseCycle-v0"
CORRECTION_ENV_ID = "beamenv/PSBPhaseCorrection-v0"


def register_envs() -> None:
    """Register the environment ids with Gymnasium (idempotent; done on import)."""
    from gymnasium.envs.registration import register, registry

    if CYCLE_ENV_ID not in registry:
        register(id=CYCLE_ENV_ID, entry_point="beamenv.envs.cycle:PSBPhaseCycleEnv",
                 max_episode_steps=None, disable_env_checker=False)
    if CORRECTION_ENV_ID not in registry:
        register(id=CORRECTION_ENV_ID,
                 entry_point="beamenv.envs.correction:PSBPhaseCorrectionEnv")


register_envs()
