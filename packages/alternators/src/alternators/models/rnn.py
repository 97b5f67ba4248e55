"""Deterministic recurrent baseline: a GRU or LSTM reading observations.

    h_t = RNN(x_t, h_{t-1}),   z_t = r(h_t),   x_hat_{t+1} = p(h_t)

trained with ``latent_weight * MSE(z_t, z_true_t) + obs_weight * MSE(x_hat_t, x_t)`` (one-step
prediction).  At unobserved entries the prediction ``x_hat_t`` is fed back in place of ``x_t``
(also in training, where missing entries take no part in the loss).  The
model is deterministic: all "samples" are identical.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import SequenceModel, masked_mse
from .bodies import mlp

__all__ = ["RNNModel"]


class RNNModel(SequenceModel):
    name = "rnn"
    deterministic = True

    def __init__(self, obs_dim: int, latent_dim: int, *, hidden: int = 128, layers: int = 1,
                 cell: str = "gru", latent_weight: float = 1.0, obs_weight: float = 0.5) -> None:
        super().__init__(obs_dim, latent_dim)
        if cell not in ("gru", "lstm"):
            raise ValueError(f"unknown cell {cell!r}: use gru or lstm")
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.cell_type = cell
        self.hidden = int(hidden)
        self.num_layers = int(layers)
        self.rnn = rnn_cls(obs_dim, hidden, num_layers=layers, batch_first=True)
        self.readout = mlp(hidden, latent_dim, hidden, 1)
        self.predict = mlp(hidden, obs_dim, hidden, 1)
        self.latent_weight = float(latent_weight)
        self.obs_weight = float(obs_weight)

    def _initial(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = x.new_zeros(self.num_layers, x.shape[0], self.hidden)
        return (h, h.clone()) if self.cell_type == "lstm" else h

    def _first_prediction(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x.new_zeros(x.shape[0], 1, self.hidden))

    def _run(self, x: torch.Tensor, mask: torch.Tensor | None,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if mask is None:
            hs, _ = self.rnn(x, self._initial(x))
            preds = torch.cat([self._first_prediction(x), self.predict(hs[:, :-1])], 1)
            return x, self.readout(hs), preds
        state = self._initial(x)
        x_hat = self._first_prediction(x)
        used: list[torch.Tensor] = []
        hidden: list[torch.Tensor] = []
        step_preds: list[torch.Tensor] = []
        for t in range(x.shape[1]):
            x_t = torch.where(mask[:, t : t + 1], x[:, t : t + 1], x_hat)
            out, state = self.rnn(x_t, state)
            used.append(x_t)
            hidden.append(out)
            step_preds.append(x_hat)
            x_hat = self.predict(out)
        hs = torch.cat(hidden, 1)
        return torch.cat(used, 1), self.readout(hs), torch.cat(step_preds, 1)

    def loss(self, x: torch.Tensor, z: torch.Tensor | None = None,
             mask: torch.Tensor | None = None,
             z_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        x, mask = self.prepare_loss_inputs(x, mask)
        _, z_hat, x_pred = self._run(x, mask, None)
        obs = masked_mse(x_pred, x, mask)
        result = {"obs_mse": obs}
        total = self.obs_weight * obs
        if z is not None:
            lat = masked_mse(z_hat, torch.nan_to_num(z), z_mask)
            result["latent_mse"] = lat
            total = total + self.latent_weight * lat
        result["loss"] = total
        return result
