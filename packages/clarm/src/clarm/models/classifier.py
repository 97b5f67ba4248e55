"""Small CNN that classifies the module of a phase-space image; its penultimate features feed
the Frechet distance between real and generated images (the reference used a ResNet-50)."""

from __future__ import annotations

import torch
from torch import nn

from ..data import NUM_PROJECTIONS

__all__ = ["ModuleClassifier"]


class ModuleClassifier(nn.Module):
    """(B, 15, H, W) -> logits over modules; ``features`` gives (B, feature_dim)."""

    def __init__(self, modules: int, feature_dim: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(32),
            nn.Conv2d(NUM_PROJECTIONS, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(128, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, modules)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))
