"""Fidelity presets: how many macroparticles, slices and tracked turns per environment step."""

from __future__ import annotations

import dataclasses

from .errors import BeamEnvError

__all__ = ["FIDELITY_PRESETS", "Fidelity", "get_fidelity"]


@dataclasses.dataclass(frozen=True)
class Fidelity:
    """Numerical resolution of the simulation.

    Attributes:
        name: preset name.
        n_macroparticles: macroparticles in the bunch.
        n_slices: profile slices over one revolution period (induced voltage and reward).
        turns_per_step: turns tracked with BLonD in each environment step.
        n_snapshots: profiles sampled in the second half of each step for the reward.
        match_grid: phase-space grid points per axis for BLonD's bunch matching.
        induced_voltage_every: turns between updates of the profile and induced voltage (the
            kick applies the latest induced voltage every turn; space charge varies on the
            synchrotron period, hundreds of turns).
    """

    name: str
    n_macroparticles: int
    n_slices: int
    turns_per_step: int
    n_snapshots: int = 4
    match_grid: int = 200
    induced_voltage_every: int = 1

    def __post_init__(self) -> None:
        for field in ("n_macroparticles", "n_slices", "turns_per_step", "n_snapshots",
                      "match_grid", "induced_voltage_every"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BeamEnvError(f"fidelity {field} must be a positive integer, got {value!r}")
        if self.n_macroparticles < 100:
            raise BeamEnvError("fidelity n_macroparticles must be at least 100")
        if self.n_slices < 8:
            raise BeamEnvError("fidelity n_slices must be at least 8")
        if self.n_snapshots > self.turns_per_step:
            raise BeamEnvError("fidelity n_snapshots cannot exceed turns_per_step")


#: Presets from RL training on a CPU ("fast") to validation ("high").
FIDELITY_PRESETS: dict[str, Fidelity] = {
    "fast": Fidelity("fast", n_macroparticles=5_000, n_slices=64, turns_per_step=250,
                     n_snapshots=4, match_grid=200, induced_voltage_every=5),
    "medium": Fidelity("medium", n_macroparticles=20_000, n_slices=100, turns_per_step=1_000,
                       n_snapshots=6, match_grid=300, induced_voltage_every=2),
    "high": Fidelity("high", n_macroparticles=50_000, n_slices=128, turns_per_step=2_000,
                     n_snapshots=8, match_grid=400),
}


def get_fidelity(fidelity: str | Fidelity | dict) -> Fidelity:
    """Resolve a preset name, a :class:`Fidelity`, or a dict of overrides (``{"preset": ...}``)."""
    if isinstance(fidelity, Fidelity):
        return fidelity
    if isinstance(fidelity, str):
        if fidelity not in FIDELITY_PRESETS:
            raise BeamEnvError(f"unknown fidelity {fidelity!r}; choose one of "
                               f"{', '.join(FIDELITY_PRESETS)} or pass a Fidelity")
        return FIDELITY_PRESETS[fidelity]
    if isinstance(fidelity, dict):
        values = dict(fidelity)
        base = get_fidelity(values.pop("preset", "fast"))
        unknown = set(values) - {f.name for f in dataclasses.fields(Fidelity)}
        if unknown:
            raise BeamEnvError(f"unknown fidelity fields: {', '.join(sorted(unknown))}")
        values.setdefault("name", f"{base.name}*")
        return dataclasses.replace(base, **values)
    raise BeamEnvError(f"fidelity must be a preset name, Fidelity or dict, got {fidelity!r}")
