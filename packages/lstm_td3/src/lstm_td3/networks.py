"""Actor and critic networks of LSTM-TD3 (Meng, Gorbet, Kulic, arXiv 2102.12344, Fig. 2).

Each network has three parts, with separate parameters for the actor and each twin critic:

* **memory extraction** over the past window: ``[obs (, act)]`` -> Linear+ReLU layers ->
  LSTM -> optional Linear+ReLU layers, read at the last real step of the window;
* **current feature extraction**: Linear+ReLU layers on ``obs`` (actor) or ``[obs, act]``
  (critic);
* **perception integration**: ``concat[memory, current]`` -> Linear+ReLU layers -> output
  (critic: one value; actor: ``act_dim`` values, ``tanh`` times ``act_limit``).

Windows have shape ``(B, W, feature)`` and are left-aligned with lengths ``hist_len`` (B,); a
zero-length window is read as one zero step.

With ``max_hist_len = 0`` (plain TD3) the memory branch would only ever see that one zero step, so
its output is a constant vector and adds nothing but a bias to the first integration layer.  Such
networks are built without a memory branch (``use_memory=False``): the integration head reads the
current features alone.  Checkpoints of the earlier layout (a memory branch fed with zeros) load
into it with the constant folded into that layer's bias (same function; see
:func:`_fold_constant_memory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = [
    "Actor", "Critic", "MemoryBranch", "NetworkConfig", "TwinCritic", "mlp", "unrolled_lstm",
]


@dataclass
class NetworkConfig:
    """Layer sizes of one network.

    Defaults: the original code's command-line defaults (LinghengMeng/LSTM-TD3,
    ``lstm_td3_main.py``), which made the paper's runs: pre-LSTM (128,), LSTM 128, no after-LSTM
    layer, current features (128, 128), integration (128,), and past actions in the history
    (the paper's history is observation-action pairs).  That last default is the actor's: the
    original's command line runs its critics without past actions (see
    :class:`~lstm_td3.agent.TD3Config`).
    """

    mem_pre_lstm: tuple[int, ...] = (128,)
    lstm_hidden: int = 128
    lstm_layers: int = 1
    mem_after_lstm: tuple[int, ...] = ()
    cur_feature: tuple[int, ...] = (128, 128)
    post_comb: tuple[int, ...] = (128,)
    hist_with_past_act: bool = True

    def __post_init__(self) -> None:
        sizes = (*self.mem_pre_lstm, *self.mem_after_lstm, *self.cur_feature, *self.post_comb)
        if any(int(s) < 1 for s in sizes) or self.lstm_hidden < 1 or self.lstm_layers < 1:
            raise ValueError(f"layer sizes must be positive, got {self}")


class _ReLUSavingOutput(torch.autograd.Function):
    """``relu(x)`` whose backward reads the mask off the saved output (``out > 0``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clamp_min(0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad * torch.sign(out)  # out >= 0: sign is the float mask, no bool tensor


class ReLU(nn.ReLU):
    """``nn.ReLU`` (eager: the same kernel).  Under ``torch.compile`` it saves its output for the
    backward instead of letting AOTAutograd save a separate ``bool`` mask: inductor's CPU code
    for storing vectorised ``bool`` masks is about 15x slower than the ReLU itself (532 vs
    32 us for 500x64, AVX2), and the output is kept anyway as the next layer's input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return _ReLUSavingOutput.apply(x)
        return super().forward(x)


def mlp(sizes: Sequence[int], out_activation: bool = True) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]``, ReLU between (and after if asked)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or out_activation:
            layers.append(ReLU())
    return nn.Sequential(*layers)


class MemoryBranch(nn.Module):
    """Linear+ReLU -> LSTM -> Linear+ReLU over a left-aligned window; output ``(B, out_dim)``."""

    def __init__(self, in_dim: int, cfg: NetworkConfig) -> None:
        super().__init__()
        self.pre = mlp([in_dim, *cfg.mem_pre_lstm])
        pre_dim = cfg.mem_pre_lstm[-1] if cfg.mem_pre_lstm else in_dim
        self.lstm = nn.LSTM(pre_dim, cfg.lstm_hidden, num_layers=cfg.lstm_layers, batch_first=True)
        self.after = mlp([cfg.lstm_hidden, *cfg.mem_after_lstm])
        self.out_dim = cfg.mem_after_lstm[-1] if cfg.mem_after_lstm else cfg.lstm_hidden

    def forward(self, window: torch.Tensor, hist_len: torch.Tensor) -> torch.Tensor:
        """``window`` (B, W, in_dim), ``hist_len`` (B,) int -> features (B, out_dim).

        Eager calls run the ``nn.LSTM`` kernel.  Under ``torch.compile`` the same LSTM is traced
        as plain tensor ops (:func:`unrolled_lstm`, same parameters), which inductor can fuse;
        Dynamo would otherwise break the graph at ``nn.LSTM`` (tracing needs
        ``torch._dynamo.config.allow_rnn``, which :class:`~lstm_td3.agent.LSTMTD3` sets for its
        compiled calls only).
        """
        last = (hist_len.clamp(min=1) - 1).to(torch.long)
        if torch.compiler.is_compiling():
            return self.after(unrolled_lstm(self.lstm, self.pre(window), last))
        out, _ = self.lstm(self.pre(window))
        picked = out[torch.arange(out.shape[0], device=out.device), last]
        return self.after(picked)


def unrolled_lstm(lstm: nn.LSTM, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The top-layer output of ``lstm`` (``batch_first``, zero initial state) at step ``last``.

    ``x`` (B, W, in), ``last`` (B,) int64 in ``[0, W)`` -> (B, hidden).  Same result as
    ``lstm(x)[0][arange(B), last]`` with the same parameters (``weight_ih_l{k}``, ...; gate
    order i, f, g, o), written as one input GEMM per layer and a loop over the ``W`` steps, so
    that ``torch.compile`` sees (and fuses) every operation.
    """
    B, W, _ = x.shape
    for k in range(lstm.num_layers):
        w_ih = getattr(lstm, f"weight_ih_l{k}")
        w_hh = getattr(lstm, f"weight_hh_l{k}")
        bias = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
        gx = torch.nn.functional.linear(x, w_ih, bias)  # (B, W, 4H), all steps at once
        h = c = x.new_zeros(B, lstm.hidden_size)
        outs = []
        for t in range(W):
            gates = gx[:, t] if t == 0 else gx[:, t] + h @ w_hh.t()
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs, dim=1)  # (B, W, H)
    return x[torch.arange(B, device=x.device), last]


def _window(hist_obs: torch.Tensor, hist_act: torch.Tensor, with_act: bool) -> torch.Tensor:
    return torch.cat([hist_obs, hist_act], dim=-1) if with_act else hist_obs


def _fold_constant_memory(mem_in: int, cfg: NetworkConfig):
    """A ``load_state_dict`` pre-hook for a network built without a memory branch: a state dict
    of the earlier layout (``memory.*`` keys, integration layer over ``[memory, current]``) is
    rewritten in place.  The memory output for the zero-step window, ``m0``, is computed with the
    stored memory parameters; the integration layer keeps the columns of the current features
    and gets ``b + W_mem @ m0`` as its bias, which is the same function."""

    def hook(state_dict, prefix, *_args) -> None:
        keys = [k for k in state_dict if k.startswith(prefix + "memory.")]
        if not keys:
            return
        old = MemoryBranch(mem_in, cfg)
        old.load_state_dict({k[len(prefix) + 7:]: state_dict.pop(k) for k in keys})
        with torch.no_grad():
            m0 = old(torch.zeros(1, 1, mem_in), torch.zeros(1, dtype=torch.long))[0]
        w, b = state_dict[prefix + "post.0.weight"], state_dict[prefix + "post.0.bias"]
        k = old.out_dim
        state_dict[prefix + "post.0.bias"] = b + w[:, :k] @ m0.to(w)
        state_dict[prefix + "post.0.weight"] = w[:, k:].clone()

    return hook


class Actor(nn.Module):
    """Deterministic policy ``mu(o, h)`` with output in ``[-act_limit, act_limit]``.

    ``act_limit`` (act_dim,) is the half-width of a symmetric box action space; ``act_offset``
    its centre.  ``use_memory=False`` (``max_hist_len = 0``) builds no memory branch; the history
    arguments are then ignored.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        act_limit: torch.Tensor | np.ndarray | float = 1.0,
        act_offset: torch.Tensor | np.ndarray | float = 0.0,
        cfg: NetworkConfig | None = None,
        use_memory: bool = True,
    ) -> None:
        super().__init__()
        cfg = cfg or NetworkConfig()
        self.cfg = cfg
        mem_in = obs_dim + (act_dim if cfg.hist_with_past_act else 0)
        self.memory = MemoryBranch(mem_in, cfg) if use_memory else None
        self.current = mlp([obs_dim, *cfg.cur_feature])
        cur_dim = cfg.cur_feature[-1] if cfg.cur_feature else obs_dim
        mem_dim = self.memory.out_dim if self.memory is not None else 0
        self.post = mlp([mem_dim + cur_dim, *cfg.post_comb, act_dim], False)
        if self.memory is None:
            self._register_load_state_dict_pre_hook(_fold_constant_memory(mem_in, cfg))
        self.act_limit: torch.Tensor
        self.act_offset: torch.Tensor
        self.register_buffer("act_limit", torch.as_tensor(act_limit, dtype=torch.float32))
        self.register_buffer("act_offset", torch.as_tensor(act_offset, dtype=torch.float32))

    def forward(
        self,
        obs: torch.Tensor,
        hist_obs: torch.Tensor,
        hist_act: torch.Tensor,
        hist_len: torch.Tensor,
    ) -> torch.Tensor:
        """``obs`` (B, obs_dim), windows (B, W, .), ``hist_len`` (B,) -> action (B, act_dim)."""
        x = self.current(obs)
        if self.memory is not None:
            mem = self.memory(_window(hist_obs, hist_act, self.cfg.hist_with_past_act), hist_len)
            x = torch.cat([mem, x], dim=-1)
        return self.act_offset + self.act_limit * torch.tanh(self.post(x))


class Critic(nn.Module):
    """Action value ``Q(o, a, h)`` -> shape ``(B,)``."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: NetworkConfig | None = None,
                 use_memory: bool = True) -> None:
        super().__init__()
        cfg = cfg or NetworkConfig()
        self.cfg = cfg
        mem_in = obs_dim + (act_dim if cfg.hist_with_past_act else 0)
        self.memory = MemoryBranch(mem_in, cfg) if use_memory else None
        self.current = mlp([obs_dim + act_dim, *cfg.cur_feature])
        cur_dim = cfg.cur_feature[-1] if cfg.cur_feature else obs_dim + act_dim
        mem_dim = self.memory.out_dim if self.memory is not None else 0
        self.post = mlp([mem_dim + cur_dim, *cfg.post_comb, 1], False)
        if self.memory is None:
            self._register_load_state_dict_pre_hook(_fold_constant_memory(mem_in, cfg))

    def forward(
        self,
        obs: torch.Tensor,
        act: torch.Tensor,
        hist_obs: torch.Tensor,
        hist_act: torch.Tensor,
        hist_len: torch.Tensor,
    ) -> torch.Tensor:
        x = self.current(torch.cat([obs, act], dim=-1))
        if self.memory is not None:
            mem = self.memory(_window(hist_obs, hist_act, self.cfg.hist_with_past_act), hist_len)
            x = torch.cat([mem, x], dim=-1)
        return self.post(x).squeeze(-1)


class TwinCritic(nn.Module):
    """Two independent critics (clipped double-Q, Fujimoto et al. 2018)."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: NetworkConfig | None = None,
                 use_memory: bool = True) -> None:
        super().__init__()
        self.q1 = Critic(obs_dim, act_dim, cfg, use_memory)
        self.q2 = Critic(obs_dim, act_dim, cfg, use_memory)

    def forward(self, obs, act, hist_obs, hist_act, hist_len) -> tuple[torch.Tensor, torch.Tensor]:
        """Both values, each shape ``(B,)``."""
        return (
            self.q1(obs, act, hist_obs, hist_act, hist_len),
            self.q2(obs, act, hist_obs, hist_act, hist_len),
        )
