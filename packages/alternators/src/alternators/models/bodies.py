"""Network bodies for the per-step maps of the sequence models.

``mlp`` is the default body.  ``attention`` is the reference code's body (vertaix/Alternators,
``Alt.py``): a linear projection to d_model 64, the sinusoidal position code of position 0, a
stack of post-norm transformer encoder layers (4 heads, feed-forward 4 x d_model, dropout 0.1,
ReLU) and a linear read-out, applied to each time step as a sequence of length one (so the
attention reduces to its value and output maps), with the reference's uniform(-0.05, 0.05)
initialisation of every parameter.  For image-like observations (flattened ``C*H*W`` vectors with a
known ``obs_shape``) :class:`ConvEncoder` maps an observation to a vector and
:class:`ConvDecoder` maps a vector to an observation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AttentionBody", "ConvDecoder", "ConvEncoder", "make_body", "mlp"]


def mlp(in_dim: int, out_dim: int, hidden: int = 128, layers: int = 3,
        activation: type[nn.Module] = nn.GELU) -> nn.Sequential:
    """A multilayer perceptron with ``layers`` hidden layers of width ``hidden`` (0: linear)."""
    if in_dim < 1 or out_dim < 1 or hidden < 1 or layers < 0:
        raise ValueError("mlp needs positive dimensions and layers >= 0")
    modules: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), activation()]
        width = hidden
    modules.append(nn.Linear(width, out_dim))
    return nn.Sequential(*modules)


def _check_shape(obs_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(obs_shape) != 3 or min(obs_shape) < 1:
        raise ValueError(f"obs_shape must be (channels, height, width), got {tuple(obs_shape)}")
    c, h, w = (int(v) for v in obs_shape)
    return c, h, w


class ConvEncoder(nn.Module):
    """Image observation (B, C*H*W) -> vector (B, out_dim): two stride-2 convolutions + MLP head."""

    def __init__(self, obs_shape: Sequence[int], out_dim: int, channels: int = 32,
                 hidden: int = 128) -> None:
        super().__init__()
        self.obs_shape = _check_shape(obs_shape)
        c, h, w = self.obs_shape
        self.conv = nn.Sequential(
            nn.Conv2d(c, channels, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.GELU(),
        )
        h4, w4 = math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2)
        self.head = mlp(channels * h4 * w4, out_dim, hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        images = x.reshape(-1, *self.obs_shape)
        return self.head(self.conv(images).flatten(1)).reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """Vector (B, in_dim) -> image observation (B, C*H*W): MLP + two upsampling convolutions."""

    def __init__(self, in_dim: int, obs_shape: Sequence[int], channels: int = 32,
                 hidden: int = 128) -> None:
        super().__init__()
        self.obs_shape = _check_shape(obs_shape)
        c, h, w = self.obs_shape
        self.channels = channels
        self.grid = (math.ceil(h / 4), math.ceil(w / 4))
        self.head = mlp(in_dim, channels * self.grid[0] * self.grid[1], hidden, 1)
        self.up1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.up2 = nn.Conv2d(channels, c, 3, padding=1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        lead = v.shape[:-1]
        grid = self.head(v.reshape(-1, v.shape[-1])).reshape(-1, self.channels, *self.grid)
        mid = nn.functional.gelu(self.up1(nn.functional.interpolate(grid, scale_factor=2)))
        out = self.up2(nn.functional.interpolate(mid, size=self.obs_shape[1:]))
        return out.reshape(*lead, -1)


class AttentionBody(nn.Module):
    """The reference's per-step self-attention network: (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, d_model: int = 64, heads: int = 4,
                 layers: int = 3, dropout: float = 0.1, init_range: float = 0.05) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or layers < 1 or d_model % heads or d_model % 2:
            raise ValueError("attention body needs positive dims, layers >= 1 and an even "
                             "d_model divisible by heads")
        self.input_proj = nn.Linear(in_dim, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model,
                                           dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.output_proj = nn.Linear(d_model, out_dim)
        # sinusoidal code of position 0: sin(0) = 0 on even, cos(0) = 1 on odd features
        position0 = torch.zeros(d_model)
        position0[1::2] = 1.0
        self.register_buffer("position0", position0, persistent=False)
        if init_range > 0:
            for param in self.parameters():
                nn.init.uniform_(param, -init_range, init_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        tokens = (self.input_proj(x.reshape(-1, 1, x.shape[-1])) + self.position0)
        return self.output_proj(self.encoder(tokens)).reshape(*lead, -1)


def make_body(kind: str, in_dim: int, out_dim: int, *, role: str, hidden: int = 128,
              layers: int = 3, obs_shape: Sequence[int] | None = None) -> nn.Module:
    """Build a per-step network.

    kind: "mlp", "attention" (the reference's self-attention body; ``layers`` encoder layers,
    ``hidden`` unused) or "conv".  role: "encoder" (observation -> vector) or "decoder"
    (vector -> observation); only the conv body distinguishes them, and needs ``obs_shape``
    (C, H, W) with ``C*H*W`` equal to the observation dimension.
    """
    if kind == "mlp":
        return mlp(in_dim, out_dim, hidden, layers)
    if kind == "attention":
        return AttentionBody(in_dim, out_dim, layers=layers)
    if kind != "conv":
        raise ValueError(f"unknown body {kind!r}: use mlp, attention or conv")
    if obs_shape is None:
        raise ValueError("the conv body needs obs_shape (channels, height, width)")
    c, h, w = _check_shape(obs_shape)
    obs_dim = in_dim if role == "encoder" else out_dim
    if c * h * w != obs_dim:
        raise ValueError(f"obs_shape {tuple(obs_shape)} holds {c * h * w} values, but the "
                         f"observations have {obs_dim}")
    if role == "encoder":
        return ConvEncoder(obs_shape, out_dim, hidden=hidden)
    if role == "decoder":
        return ConvDecoder(in_dim, obs_shape, hidden=hidden)
    raise ValueError(f"unknown role {role!r}: use encoder or decoder")
