"""Data: the Lorenz spiking benchmark and HDF5 sequence files."""

from .dataset import (
    PREDICTION_SCHEMA,
    SEQUENCE_SCHEMA,
    SPLITS,
    SequenceData,
    Standardizer,
    default_split,
    load_sequences,
    save_sequences,
)
from .lorenz import integrate_lorenz, lorenz_rhs, minmax_scale
from .reference import ReferenceLorenzConfig, simulate_reference_lorenz
from .simulate import LorenzConfig, simulate_lorenz
from .spikes import NeuronPopulation, preprocess_spikes, simulate_spikes, stack_history

__all__ = [
    "PREDICTION_SCHEMA",
    "SEQUENCE_SCHEMA",
    "SPLITS",
    "LorenzConfig",
    "NeuronPopulation",
    "ReferenceLorenzConfig",
    "SequenceData",
    "Standardizer",
    "default_split",
    "integrate_lorenz",
    "load_sequences",
    "lorenz_rhs",
    "minmax_scale",
    "preprocess_spikes",
    "save_sequences",
    "simulate_lorenz",
    "simulate_reference_lorenz",
    "simulate_spikes",
    "stack_history",
]
