"""Sequence models: the Alternator and the VRNN and GRU/LSTM baselines."""

from .alternator import AlphaSchedule, Alternator
from .base import Prediction, SequenceModel, check_mask, check_observations
from .bodies import ConvDecoder, ConvEncoder, make_body, mlp
from .factory import MODEL_NAMES, ModelConfig, build_model
from .rnn import RNNModel
from .vrnn import VRNN

__all__ = [
    "MODEL_NAMES",
    "VRNN",
    "AlphaSchedule",
    "Alternator",
    "ConvDecoder",
    "ConvEncoder",
    "ModelConfig",
    "Prediction",
    "RNNModel",
    "SequenceModel",
    "build_model",
    "check_mask",
    "check_observations",
    "make_body",
    "mlp",
]
