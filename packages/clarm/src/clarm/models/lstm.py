"""Latent LSTM: next-latent prediction on variable-length sequences (CLARM's temporal part).

Input: standardised latent sequences (B, T_max, D) with true lengths (B,); the sequences are
packed (``pack_padded_sequence``) so the prediction is read from the last *real* step of each
sequence (the reference read the last padded step).  Output: the next latent (B, D), predicted
as a residual on the last input latent.  Forecasting rolls the model forward autoregressively.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

__all__ = ["LSTMConfig", "LatentLSTM"]


@dataclass
class LSTMConfig:
    """Architecture of :class:`LatentLSTM` (stored in every checkpoint)."""

    latent_dim: int = 8
    hidden: int = 64
    layers: int = 2
    modules: int = 12
    module_input: bool = True

    def validate(self) -> None:
        if min(self.latent_dim, self.hidden, self.layers, self.modules) < 1:
            raise ValueError("latent_dim, hidden, layers and modules must be >= 1")


class LatentLSTM(nn.Module):
    """2 x 64 LSTM + Linear(64 -> D) predicting z_{t+1} - z_t from z_1..z_t."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        extra = config.modules if config.module_input else 0
        self.lstm = nn.LSTM(config.latent_dim + extra, config.hidden, config.layers,
                            batch_first=True)
        self.out = nn.Linear(config.hidden, config.latent_dim)

    def _inputs(self, seq: torch.Tensor) -> torch.Tensor:
        if not self.config.module_input:
            return seq
        b, t, _ = seq.shape
        steps = torch.arange(t, device=seq.device).clamp(max=self.config.modules - 1)
        onehot = nn.functional.one_hot(steps, self.config.modules).float()
        return torch.cat([seq, onehot.expand(b, t, -1)], dim=2)

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """seq (B, T, D) padded, lengths (B,) >= 1 -> next latent (B, D)."""
        lengths_cpu = lengths.detach().to("cpu", torch.int64)
        if (lengths_cpu < 1).any() or (lengths_cpu > seq.shape[1]).any():
            raise ValueError("sequence lengths must be in 1..T")
        packed = pack_padded_sequence(self._inputs(seq), lengths_cpu, batch_first=True,
                                      enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        last = seq[torch.arange(seq.shape[0], device=seq.device), lengths.long() - 1]
        return last + self.out(h_n[-1])

    @torch.no_grad()
    def rollout(self, observed: torch.Tensor, total: int) -> torch.Tensor:
        """Autoregressive forecast: observed (B, k, D) -> (B, total, D) (first k copied)."""
        b, k, _ = observed.shape
        if not 1 <= k <= total:
            raise ValueError(f"need 1 <= observed ({k}) <= total ({total})")
        seq = observed
        while seq.shape[1] < total:
            lengths = torch.full((b,), seq.shape[1], dtype=torch.int64)
            nxt = self.forward(seq, lengths)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
        return seq
