"""Neural networks of CLARM: the conditional VAE, the latent LSTM and the module classifier."""

from .classifier import ModuleClassifier
from .cvae import CVAE, CVAEConfig, cvae_loss
from .lstm import LatentLSTM, LSTMConfig

__all__ = ["CVAE", "CVAEConfig", "LSTMConfig", "LatentLSTM", "ModuleClassifier", "cvae_loss"]
