"""Gymnasium wrappers: POMDP variants of fully observable tasks."""

from .pomdp import POMDP_KINDS, VELOCITY_INDICES, POMDPWrapper, parse_pomdp, velocity_indices

__all__ = ["POMDP_KINDS", "VELOCITY_INDICES", "POMDPWrapper", "parse_pomdp", "velocity_indices"]
