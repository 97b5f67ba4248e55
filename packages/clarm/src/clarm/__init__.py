"""CLARM: conditional VAE + latent LSTM that generates and forecasts 6D beam phase space.

Rautela, Williams, Scheinker, "A conditional latent autoregressive recurrent model for
generation and forecasting of beam dynamics in particle accelerators", Sci. Rep. 2024
(arXiv:2403.13858).  Modules: :mod:`clarm.data` (HDF5 format, .npy converter), :mod:`clarm.sim`
(cheetah proton linac), :mod:`clarm.models` (CVAE, latent LSTM), :mod:`clarm.normalise`,
:mod:`clarm.config` (training configs), :mod:`clarm.train` (training jobs on
:func:`physml_core.training.fit`), :mod:`clarm.artifacts` (loading trained models),
:mod:`clarm.generate`, :mod:`clarm.forecast`, :mod:`clarm.evaluate`, :mod:`clarm.cli`.
"""

from importlib.metadata import PackageNotFoundError, version

from .artifacts import LoadedCVAE, LoadedLSTM, load_cvae, load_lstm
from .config import CVAETrainConfig, LSTMTrainConfig
from .data import PHASE_SPACE_SCHEMA, PhaseSpaceFile, convert_npy
from .forecast import forecast, forecast_file
from .generate import generate
from .models import CVAE, CVAEConfig, LatentLSTM, LSTMConfig
from .sim import SimConfig, simulate, simulate_runs
from .train import train_cvae, train_lstm

try:
    __version__ = version("clarm")
except PackageNotFoundError:  # source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "CVAE",
    "PHASE_SPACE_SCHEMA",
    "CVAEConfig",
    "CVAETrainConfig",
    "LSTMConfig",
    "LSTMTrainConfig",
    "LatentLSTM",
    "LoadedCVAE",
    "LoadedLSTM",
    "PhaseSpaceFile",
    "SimConfig",
    "__version__",
    "convert_npy",
    "forecast",
    "forecast_file",
    "generate",
    "load_cvae",
    "load_lstm",
    "simulate",
    "simulate_runs",
    "train_cvae",
    "train_lstm",
]
