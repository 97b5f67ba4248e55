"""Exception and warning classes shared by every physml package.

A :class:`PhysmlError` is a *user-facing* error: the message is one line that says what is wrong
and how to fix it.  The command-line layer (:mod:`physml_core.cli`) prints such errors without a
traceback and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataFormatError",
    "DeviceError",
    "PhysmlError",
    "PhysmlWarning",
]


class PhysmlError(Exception):
    """Base class of errors caused by user input (files, options, devices)."""


class DataFormatError(PhysmlError, ValueError):
    """A data file is missing, is not HDF5, or does not match its schema."""


class CheckpointError(PhysmlError, ValueError):
    """A checkpoint is missing, corrupt, truncated or belongs to another package/model."""


class DeviceError(PhysmlError, ValueError):
    """A requested compute device is unknown or not available on this machine."""


class ConfigError(PhysmlError, ValueError):
    """A configuration mapping has unknown keys or values of the wrong type."""


class PhysmlWarning(UserWarning):
    """Base class of warnings issued by physml packages."""
