"""Sequence models: the Alternator, the VRNN and GRU/LSTM baselines and a memoryless floor."""

from .alternator import AlphaSchedule, Alternator
from .base import Prediction, SequenceModel, check_mask, check_observations, masked_mse
from .bodies import AttentionBody, ConvDecoder, ConvEncoder, make_body, mlp
from .factory import MODEL_NAMES, ModelConfig, build_model
from .floor import MemorylessMLP
from .rnn import RNNModel
from .vrnn import VRNN

__all__ = [
    "MODEL_NAMES",
    "VRNN",
    "AlphaSchedule",
    "Alternator",
    "AttentionBody",
    "ConvDecoder",
    "ConvEncoder",
    "MemorylessMLP",
    "ModelConfig",
    "Prediction",
    "RNNModel",
    "SequenceModel",
    "build_model",
    "check_mask",
    "check_observations",
    "make_body",
    "masked_mse",
    "mlp",
]
