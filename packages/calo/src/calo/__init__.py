"""calo: calorimeter shower simulation and generation in the CaloGAN format.

- :mod:`calo.data`: the CaloGAN HDF5 schema, validated streaming reads and writes, fetch helper.
- :mod:`calo.sim`: a vectorised GFlash-style simulator of the CaloGAN calorimeter.
- :mod:`calo.models`: CaloGAN (PyTorch port) and CaloVAE.
- :mod:`calo.config`: the training config and its presets; :mod:`calo.artifacts`: load a
  trained model (:func:`load_model` -> :class:`LoadedModel`).
- :mod:`calo.train`, :mod:`calo.generate`, :mod:`calo.evaluate`: the pipeline steps.
- :mod:`calo.observables`, :mod:`calo.metrics`: shower shapes and distribution metrics.
"""

from importlib.metadata import PackageNotFoundError, version

from .artifacts import LoadedModel, load_model
from .config import PRESETS, TrainConfig, preset_config
from .data import CALO_SCHEMA, iter_showers, read_showers, write_showers
from .evaluate import EvaluateConfig, evaluate
from .generate import GenerateConfig, generate
from .metrics import (
    ClassifierConfig,
    calochallenge_edges,
    classifier_test,
    fpd,
    kpd,
    ks_statistic,
    separation_power,
    wasserstein1,
)
from .models import CaloGAN, CaloGANConfig, CaloVAE, CaloVAEConfig
from .observables import high_level_features, high_level_features_cc, shower_observables
from .preprocessing import ShowerPreprocessor
from .sim import SimConfig, merge_files, simulate_showers, simulate_to_file
from .train import train

try:
    __version__ = version("calo")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "CALO_SCHEMA",
    "PRESETS",
    "CaloGAN",
    "CaloGANConfig",
    "CaloVAE",
    "CaloVAEConfig",
    "ClassifierConfig",
    "EvaluateConfig",
    "GenerateConfig",
    "LoadedModel",
    "ShowerPreprocessor",
    "SimConfig",
    "TrainConfig",
    "__version__",
    "calochallenge_edges",
    "classifier_test",
    "evaluate",
    "fpd",
    "generate",
    "high_level_features",
    "high_level_features_cc",
    "iter_showers",
    "kpd",
    "ks_statistic",
    "load_model",
    "merge_files",
    "preset_config",
    "read_showers",
    "separation_power",
    "shower_observables",
    "simulate_showers",
    "simulate_to_file",
    "train",
    "wasserstein1",
    "write_showers",
]
