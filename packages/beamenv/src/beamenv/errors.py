"""Errors and warnings raised by beamenv.

The user-facing errors derive from :class:`ValueError` so that the physml command-line
convention (one line on stderr, exit status 2) applies to them.  They deliberately do not derive
from :class:`physml_core.errors.PhysmlError`: importing ``physml_core`` imports torch (several
seconds), which every environment worker process would otherwise pay for nothing.
"""

from __future__ import annotations

__all__ = [
    "BackendWarning",
    "BeamEnvError",
    "BeamEnvWarning",
    "MatchingTimeoutError",
    "ProgramFileError",
]


class BeamEnvError(ValueError):
    """Invalid user input to a beamenv function, environment or command."""


class ProgramFileError(BeamEnvError):
    """A machine program file is missing, malformed or physically impossible."""


class MatchingTimeoutError(BeamEnvError, TimeoutError):
    """Matching the bunch to the RF bucket did not finish within the time limit."""


class BeamEnvWarning(UserWarning):
    """Base class of beamenv warnings."""


class BackendWarning(BeamEnvWarning):
    """The fast compiled BLonD backend could not be built or loaded; a slower one is used."""
