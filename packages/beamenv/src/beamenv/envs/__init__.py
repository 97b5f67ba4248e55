"""The PS Booster environments (imported lazily by gymnasium through their entry points)."""

from __future__ import annotations

__all__ = ["PSBPhaseCorrectionEnv", "PSBPhaseCycleEnv"]


def __getattr__(name: str):
    if name == "PSBPhaseCycleEnv":
        from .cycle import PSBPhaseCycleEnv

        return PSBPhaseCycleEnv
    if name == "PSBPhaseCorrectionEnv":
        from .correction import PSBPhaseCorrectionEnv

        return PSBPhaseCorrectionEnv
    raise AttributeError(name)
