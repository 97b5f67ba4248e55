"""Alternators: dynamical generative models for noisy time series with hidden dynamics.

The Alternator (Rezaei and Dieng, arXiv:2405.11848) with VRNN and GRU/LSTM baselines, a Lorenz
spiking-neuron benchmark, training with checkpoints, evaluation, sampling, forecasting and
imputation.
"""

from importlib.metadata import PackageNotFoundError, version

from .artifacts import LoadedModel, load_model
from .config import TrainConfig
from .data import LorenzConfig, SequenceData, load_sequences, save_sequences, simulate_lorenz
from .evaluate import EvaluateConfig, evaluate
from .inference import PredictionArrays, forecast_file, impute_file, predict, sample_sequences
from .metrics import pearson_cc, trajectory_metrics
from .models import (
    VRNN,
    AlphaSchedule,
    Alternator,
    ModelConfig,
    Prediction,
    RNNModel,
    SequenceModel,
    build_model,
)
from .train import TrainResult, train

try:
    __version__ = version("alternators")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "VRNN",
    "AlphaSchedule",
    "Alternator",
    "EvaluateConfig",
    "LoadedModel",
    "LorenzConfig",
    "ModelConfig",
    "Prediction",
    "PredictionArrays",
    "RNNModel",
    "SequenceData",
    "SequenceModel",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "build_model",
    "evaluate",
    "forecast_file",
    "impute_file",
    "load_model",
    "load_sequences",
    "pearson_cc",
    "predict",
    "sample_sequences",
    "save_sequences",
    "simulate_lorenz",
    "train",
    "trajectory_metrics",
]
