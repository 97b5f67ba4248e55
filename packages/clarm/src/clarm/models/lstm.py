"""Latent LSTM: next-latent prediction on variable-length sequences (CLARM's temporal part).

Input: standardised latent sequences (B, T_max, D) with true lengths (B,); the sequences are
packed (``pack_padded_sequence``) so the prediction is read from the last *real* step of each
sequence (the reference read the last padded step).  Output: the next latent (B, D), predicted
as a residual on the last input latent.  Training is teacher-forced on whole sequences
(:meth:`LatentLSTM.predict_steps`: one pass gives the next-latent prediction at every real
step, which equals the reference's training on every prefix at 1/(T-1) of the cost).
Forecasting rolls the model forward autoregressively, carrying the LSTM state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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

    @staticmethod
    def _check_lengths(seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths_cpu = lengths.detach().to("cpu", torch.int64)
        if lengths_cpu.shape != (seq.shape[0],):
            raise ValueError(f"lengths must have shape ({seq.shape[0]},), got {tuple(lengths.shape)}")
        if (lengths_cpu < 1).any() or (lengths_cpu > seq.shape[1]).any():
            raise ValueError("sequence lengths must be in 1..T")
        return lengths_cpu

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """seq (B, T, D) padded, lengths (B,) >= 1 -> next latent (B, D) after the last real
        step of every sequence."""
        lengths_cpu = self._check_lengths(seq, lengths)
        packed = pack_padded_sequence(self._inputs(seq), lengths_cpu, batch_first=True,
                                      enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        last = seq[torch.arange(seq.shape[0], device=seq.device), lengths_cpu.to(seq.device) - 1]
        return last + self.out(h_n[-1])

    def predict_steps(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-latent predictions at every step: seq (B, T, D) padded, lengths
        (B,) -> (B, T, D) where [:, t] predicts z_{t+1} from z_0..z_t; steps t >= length are
        zero (packing keeps padding out of the recurrence)."""
        lengths_cpu = self._check_lengths(seq, lengths)
        packed = pack_padded_sequence(self._inputs(seq), lengths_cpu, batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.lstm(packed)
        hidden, _ = pad_packed_sequence(out, batch_first=True, total_length=seq.shape[1])
        mask = (torch.arange(seq.shape[1])[None, :] < lengths_cpu[:, None]).to(seq.device)
        return (seq + self.out(hidden)) * mask[..., None]

    @torch.inference_mode()
    def rollout(self, observed: torch.Tensor, total: int, noise_std: torch.Tensor | None = None,
                generator: torch.Generator | None = None,
                eps: torch.Tensor | None = None) -> torch.Tensor:
        """Autoregressive forecast: observed (B, k, D) -> (B, total, D) (first k copied).

        The observed sequence runs through the LSTM once; each further latent is one LSTM step
        from the carried (h, c) state, so a forecast costs O(total) steps.  With
        ``noise_std`` (D,), every predicted latent gets Gaussian noise of that std before it
        is fed back (a sample of the predictive distribution, for uncertainty): standard
        normal draws ``eps`` (B, total - k, D) if given, else drawn step by step from
        ``generator``."""
        b, k, d = observed.shape
        if not 1 <= k <= total:
            raise ValueError(f"need 1 <= observed ({k}) <= total ({total})")
        if eps is not None and tuple(eps.shape) != (b, total - k, d):
            raise ValueError(f"eps must have shape {(b, total - k, d)}, got {tuple(eps.shape)}")
        out = observed.new_empty(b, total, d)
        out[:, :k] = observed
        if k == total:
            return out
        hidden, state = self.lstm(self._inputs(observed))
        nxt = observed[:, -1] + self.out(hidden[:, -1])
        for t in range(k, total):
            if noise_std is not None:
                draw = (torch.randn(nxt.shape, generator=generator) if eps is None
                        else eps[:, t - k])
                nxt = nxt + draw.to(nxt.device) * noise_std.to(nxt.device)
            out[:, t] = nxt
            if t + 1 == total:
                break
            step = self._inputs_at(nxt[:, None], t)
            hidden, state = self.lstm(step, state)
            nxt = nxt + self.out(hidden[:, -1])
        return out

    def _inputs_at(self, step: torch.Tensor, t: int) -> torch.Tensor:
        """Input (B, 1, D) of step ``t`` (module one-hot appended)."""
        if not self.config.module_input:
            return step
        onehot = step.new_zeros(step.shape[0], 1, self.config.modules)
        onehot[:, :, min(t, self.config.modules - 1)] = 1.0
        return torch.cat([step, onehot], dim=2)
