"""Model configuration and construction by name ("alternator", "vrnn", "rnn", "mlp")."""

from __future__ import annotations

from dataclasses import dataclass

from .alternator import AlphaSchedule, Alternator
from .base import SequenceModel
from .floor import MemorylessMLP
from .rnn import RNNModel
from .vrnn import VRNN

__all__ = ["MODEL_NAMES", "ModelConfig", "build_model"]

MODEL_NAMES = ("alternator", "vrnn", "rnn", "mlp")


@dataclass
class ModelConfig:
    """Hyper-parameters of every model (each model reads the ones it uses).

    name: alternator | vrnn | rnn | mlp (memoryless floor).  hidden, layers: body width, depth.
    body: mlp | attention (the reference's self-attention body) | conv (Alternator; conv
    needs obs_shape (C, H, W)).
    sigma_x, alpha, sigma_z (None: alpha * sigma_x), alpha_schedule (constant | linear |
    cosine), alpha_end, alpha_steps: the Alternator's noise and mixing coefficients.
    latent_weight, obs_weight, consistency_weight, kl_weight: loss weights.
    loss_weighting: reference (Alternator: sigma_x^2 on the latent term, sigma_z^2 on the
    observation term, as the reference code) | plain (no sigma factors; ablation).
    latent_dim: for unsupervised training (otherwise the data's Dz is used).
    stochastic_dim: VRNN stochastic state.  cell: gru | lstm (RNN baseline).
    """

    name: str = "alternator"
    hidden: int = 128
    layers: int = 3
    body: str = "mlp"
    obs_shape: list[int] | None = None
    sigma_x: float = 0.2
    alpha: float = 0.7
    sigma_z: float | None = None
    alpha_schedule: str = "constant"
    alpha_end: float = 0.7
    alpha_steps: int = 100
    latent_weight: float = 1.0
    obs_weight: float = 1.0
    loss_weighting: str = "reference"
    consistency_weight: float = 0.0
    kl_weight: float = 1.0
    latent_dim: int = 3
    stochastic_dim: int = 16
    cell: str = "gru"

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}: use one of {', '.join(MODEL_NAMES)}")
        if self.hidden < 1 or self.layers < 1 or self.latent_dim < 1:
            raise ValueError("hidden, layers and latent_dim must be at least 1")


def build_model(config: ModelConfig, obs_dim: int, latent_dim: int) -> SequenceModel:
    """Instantiate the model named by ``config`` for Dx = ``obs_dim`` and Dz = ``latent_dim``."""
    if config.name == "alternator":
        schedule = AlphaSchedule(config.alpha_schedule, config.alpha,
                                 config.alpha if config.alpha_schedule == "constant"
                                 else config.alpha_end, config.alpha_steps)
        return Alternator(
            obs_dim, latent_dim, sigma_x=config.sigma_x, alpha=schedule, sigma_z=config.sigma_z,
            body=config.body, hidden=config.hidden, layers=config.layers,
            obs_shape=config.obs_shape, latent_weight=config.latent_weight,
            obs_weight=config.obs_weight, loss_weighting=config.loss_weighting,
            consistency_weight=config.consistency_weight,
        )
    if config.name == "mlp":
        return MemorylessMLP(obs_dim, latent_dim, hidden=config.hidden, layers=config.layers)
    if config.name == "vrnn":
        return VRNN(obs_dim, latent_dim, hidden=config.hidden,
                    stochastic_dim=config.stochastic_dim, layers=max(config.layers, 1),
                    kl_weight=config.kl_weight, latent_weight=config.latent_weight)
    return RNNModel(obs_dim, latent_dim, hidden=config.hidden, layers=1, cell=config.cell,
                    latent_weight=config.latent_weight, obs_weight=config.obs_weight)
