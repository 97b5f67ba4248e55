"""The TD3 learner with memory (LSTM-TD3; Fujimoto et al. 2018, Meng et al. 2021).

TD3 details: target policy smoothing (clipped Gaussian noise on the target action), clipped
double-Q (minimum of the two target critics), delayed policy and target updates (every
``policy_delay`` critic updates) and Polyak-averaged targets.  ``done`` in a batch is 1 only for
true termination, so time-limit truncation still bootstraps.  With prioritized replay the critic
losses are weighted by the importance weights and the new priority of each sampled transition is
``max(|delta_1|, |delta_2|)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from physml_core.options import opt

from .buffers.replay import Batch, TensorBatch
from .history import ActingHistory
from .networks import Actor, NetworkConfig, TwinCritic

__all__ = ["LSTMTD3", "TD3Config", "stats_dict"]


@dataclass
class TD3Config:
    """Learning hyperparameters (defaults: the paper's, Meng et al. 2021, Table 2).

    Noise scales (``act_noise``, ``target_noise``, ``noise_clip``) are fractions of the action
    half-range ``(high - low) / 2``, per action dimension, as in Fujimoto's TD3
    (``max_action * expl_noise``), Stable-Baselines3 (noise on the action rescaled to [-1, 1])
    and CleanRL (``action_scale``).  The original LSTM-TD3 code adds them in absolute action
    units; the two agree for actions bounded at +-1 (the pybullet tasks) and differ by the
    half-range otherwise (Pendulum-v1: 2).
    """

    gamma: float = field(default=0.99, metadata=opt("Discount factor.", min=0, max=1))
    polyak: float = field(default=0.995, metadata=opt(
        "Target averaging: targ <- polyak * targ + (1 - polyak) * net (below 1).", min=0, max=1))
    pi_lr: float = field(default=1e-3, metadata=opt("Actor learning rate (Adam).", min=0))
    q_lr: float = field(default=1e-3, metadata=opt("Critic learning rate (Adam).", min=0))
    act_noise: float = field(default=0.1, metadata=opt(
        "Exploration noise std, in units of the action half-range.", min=0))
    target_noise: float = field(default=0.2, metadata=opt(
        "Target-smoothing noise std, in units of the action half-range.", min=0))
    noise_clip: float = field(default=0.5, metadata=opt(
        "Clip of the target-smoothing noise, in units of the action half-range.", min=0))
    policy_delay: int = field(default=2, metadata=opt(
        "Critic updates per actor and target update.", min=1))
    max_hist_len: int = field(default=5, metadata=opt(
        "History length L (0 = plain TD3).", flag="--hist-len", min=0))
    #: The original's command line runs the actor with past actions in its history and the
    #: critics without (``lstm_td3_main.py`` parses ``--critic_hist_with_past_act`` but never
    #: passes it on, so ``lstm_td3()``'s default False applies).
    actor: NetworkConfig = field(default_factory=NetworkConfig)
    critic: NetworkConfig = field(
        default_factory=lambda: NetworkConfig(hist_with_past_act=False))
    #: Run the critic and actor losses (forward and backward) and acting through
    #: ``torch.compile`` (inductor), with the LSTM unrolled into plain ops.  Same parameters,
    #: checkpoints and update rule as eager (results agree to float rounding); the first calls
    #: compile (tens of seconds).  Off by default.
    compile: bool = field(default=False, metadata=opt(
        "torch.compile the losses and acting (inductor; the first updates compile for tens of "
        "seconds)."))
    #: On CUDA: capture the whole update (critic loss, backward and Adam step; every
    #: ``policy_delay`` updates also the actor's and the Polyak averaging) as two CUDA graphs,
    #: after ``graph_warmup`` eager updates, and replay them (no Python or kernel-launch cost
    #: per op).  Adam then keeps its step count on the device (``capturable``).  Ignored on
    #: other devices; cannot be combined with ``compile``.
    cuda_graph: bool = field(default=False, metadata=opt(
        "On CUDA: replay the whole update as captured CUDA graphs."))
    graph_warmup: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 <= self.polyak < 1.0:
            raise ValueError(f"polyak must be in [0, 1), got {self.polyak}")
        if self.pi_lr <= 0 or self.q_lr <= 0:
            raise ValueError("learning rates must be positive")
        if min(self.act_noise, self.target_noise, self.noise_clip) < 0:
            raise ValueError("noise scales must be >= 0")
        if self.policy_delay < 1:
            raise ValueError(f"policy_delay must be >= 1, got {self.policy_delay}")
        if self.max_hist_len < 0:
            raise ValueError(f"max_hist_len must be >= 0, got {self.max_hist_len}")
        if self.cuda_graph and self.compile:
            raise ValueError("cuda_graph and compile cannot be combined")
        if self.graph_warmup < 1:
            raise ValueError(f"graph_warmup must be >= 1, got {self.graph_warmup}")


def stats_dict(values: list[float]) -> dict[str, Any]:
    """``[q_loss, q1, q2, pi_loss or NaN]`` (host floats) -> the dict :meth:`LSTMTD3.update`
    returns (``pi_loss`` ``None`` when the policy was not updated)."""
    q_loss, q1, q2, pi = (float(v) for v in values)
    return {"q_loss": q_loss, "q1": q1, "q2": q2, "pi_loss": None if pi != pi else pi}


class LSTMTD3:
    """Actor, twin critics, their targets and optimizers.

    Parameters
    ----------
    obs_dim, act_dim:
        Sizes of the flat observation and action.
    act_low, act_high:
        Bounds of the box action space, shape ``(act_dim,)``.
    config:
        :class:`TD3Config`.
    device:
        Torch device of the networks; batches are moved there.
    seed:
        Seed of the agent's own generators (exploration and target-smoothing noise).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        act_low: np.ndarray,
        act_high: np.ndarray,
        config: TD3Config | None = None,
        device: torch.device | str = "cpu",
        seed: int | None = None,
    ) -> None:
        self.config = config or TD3Config()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.device = torch.device(device)
        low = np.asarray(act_low, dtype=np.float32).reshape(self.act_dim)
        high = np.asarray(act_high, dtype=np.float32).reshape(self.act_dim)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise ValueError(f"action bounds must be finite with high > low, got {low}, {high}")
        self.act_low_np, self.act_high_np = low, high
        self.act_low = torch.as_tensor(low, device=self.device)
        self.act_high = torch.as_tensor(high, device=self.device)
        #: action half-range (act_dim,): the unit of the noise scales
        self.act_half_np = (high - low) / 2
        self.act_half = torch.as_tensor(self.act_half_np, device=self.device)
        cfg = self.config
        memory = cfg.max_hist_len > 0  # hist 0: plain TD3, no memory branch
        self.actor = Actor(
            obs_dim, act_dim, (high - low) / 2, (high + low) / 2, cfg.actor, memory
        ).to(self.device)
        self.critic = TwinCritic(obs_dim, act_dim, cfg.critic, memory).to(self.device)
        self.actor_targ = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_targ = copy.deepcopy(self.critic).requires_grad_(False)
        # fused Adam: one kernel per step instead of a loop over ~20 parameter tensors
        fused = self.device.type in ("cpu", "cuda")
        self.use_graph = bool(cfg.cuda_graph and self.device.type == "cuda")
        self.pi_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.pi_lr, fused=fused,
                                       capturable=self.use_graph)
        self.q_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.q_lr, fused=fused,
                                      capturable=self.use_graph)
        self._graphs: dict[bool, Any] = {}  # with_actor -> (graph, static batch, noise, outputs)
        self._src: list[torch.Tensor] = [*self.actor.parameters(), *self.critic.parameters()]
        self._tgt: list[torch.Tensor] = [*self.actor_targ.parameters(),
                                         *self.critic_targ.parameters()]
        self._critic_params = list(self.critic.parameters())
        self.n_updates = 0
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        self._compiled: dict[str, Callable[..., Any]] = {}
        #: ``torch.compile`` backend of the compiled path (tests use the cheap ``"aot_eager"``,
        #: which traces the same graphs without generating code); set before the first update
        self.compile_backend = "inductor"

    def _run(self, name: str, *args: Any) -> Any:
        """Call ``self._<name>(*args)``, through ``torch.compile`` when ``config.compile``."""
        fn = getattr(self, f"_{name}")
        if not self.config.compile:
            return fn(*args)
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = torch.compile(fn, dynamic=False, backend=self.compile_backend)
            self._compiled[name] = compiled
        # let Dynamo read the nn.LSTM parameters (MemoryBranch unrolls the LSTM when compiling);
        # set and restored by hand: config.patch builds a class per call (~25 us)
        config = torch._dynamo.config
        before = config.allow_rnn
        config.allow_rnn = True
        try:
            return compiled(*args)
        finally:
            config.allow_rnn = before

    # ------------------------------------------------------------------ acting
    def act(
        self, obs: np.ndarray, history: ActingHistory, noise_scale: float = 0.0
    ) -> np.ndarray:
        """Actions (n, act_dim) for observations (n, obs_dim) and their acting history; Gaussian
        exploration noise of standard deviation ``noise_scale`` times the action half-range,
        clipped to the bounds."""
        dev = self.device
        args = (
            torch.as_tensor(obs, dtype=torch.float32, device=dev).reshape(-1, self.obs_dim),
            torch.as_tensor(history.obs, device=dev),
            torch.as_tensor(history.act, device=dev),
            torch.as_tensor(history.length, device=dev),
        )
        if self.config.compile:
            with torch.no_grad():
                a = self._run("policy", *args)
        else:
            with torch.inference_mode():
                a = self.actor(*args)
        a = a.cpu().numpy()
        if noise_scale > 0:
            noise = self.rng.standard_normal(a.shape).astype(np.float32)
            a = a + (noise_scale * self.act_half_np) * noise
        return np.clip(a, self.act_low_np, self.act_high_np)

    def random_action(self, n: int) -> np.ndarray:
        """Uniform random actions (n, act_dim) from the agent's own generator."""
        u = self.rng.random((n, self.act_dim), dtype=np.float32)
        return self.act_low_np + u * (self.act_high_np - self.act_low_np)

    # ------------------------------------------------------------------ learning
    def to_tensors(self, batch: Batch | TensorBatch) -> TensorBatch:
        """The batch as tensors on the agent's device (``indices`` stays as given: it is only
        for the replay buffer).  Tensors already there are used as they are."""
        dev = self.device
        return TensorBatch._make([*(torch.as_tensor(x).to(dev, non_blocking=True)
                                    for x in batch[:-1]), batch.indices])

    def _policy(self, obs, hist_obs, hist_act, hist_len) -> torch.Tensor:
        return self.actor(obs, hist_obs, hist_act, hist_len)

    def _target_noise(self, batch_size: int) -> torch.Tensor:
        """Standard normal draws (batch_size, act_dim) for target policy smoothing."""
        return torch.randn((batch_size, self.act_dim), generator=self.gen, device=self.device)

    def _smoothed_target_action(self, b: TensorBatch, noise: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        a2 = self.actor_targ(b.next_obs, b.next_hist_obs, b.next_hist_act, b.next_hist_len)
        noise = (noise * cfg.target_noise).clamp(-cfg.noise_clip, cfg.noise_clip) * self.act_half
        return torch.maximum(torch.minimum(a2 + noise, self.act_high), self.act_low)

    @torch.no_grad()
    def target_action(self, b: TensorBatch) -> torch.Tensor:
        """Target policy smoothing: ``clip(mu_targ(o') + half * clip(N(0, target_noise),
        +-noise_clip), low, high)`` (``half``: the action half-range) for a batch of tensors;
        shape (B, act_dim)."""
        return self._smoothed_target_action(b, self._target_noise(b.obs.shape[0]))

    def _critic_loss(
        self, b: TensorBatch, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clipped double-Q loss (scalar, with graph), ``[q_loss, mean q1, mean q2]`` (3,) and
        the TD errors ``e1``, ``e2`` (B,) (both detached); ``noise`` (B, act_dim) N(0, 1)."""
        cfg = self.config
        with torch.no_grad():
            a2 = self._smoothed_target_action(b, noise)
            q1_t, q2_t = self.critic_targ(
                b.next_obs, a2, b.next_hist_obs, b.next_hist_act, b.next_hist_len
            )
            backup = b.rew + cfg.gamma * (1.0 - b.done) * torch.minimum(q1_t, q2_t)
        q1, q2 = self.critic(b.obs, b.act, b.hist_obs, b.hist_act, b.hist_len)
        e1, e2 = q1 - backup, q2 - backup
        q_loss = (b.weights * e1.square()).mean() + (b.weights * e2.square()).mean()
        with torch.no_grad():
            stats = torch.stack([q_loss, q1.mean(), q2.mean()])
        return q_loss, stats, e1.detach(), e2.detach()

    def _actor_loss(self, b: TensorBatch) -> torch.Tensor:
        """``-mean Q1(o, mu(o, h), h)`` (scalar); critic parameters must not require grad."""
        pi = self.actor(b.obs, b.hist_obs, b.hist_act, b.hist_len)
        return -self.critic.q1(b.obs, pi, b.hist_obs, b.hist_act, b.hist_len).mean()

    def _step(self, b: TensorBatch, noise: torch.Tensor, with_actor: bool,
              zero_grads: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The update's device work: critic step, and with ``with_actor`` the actor step and
        Polyak averaging.  Returns ``stats`` (4,) = [q_loss, mean q1, mean q2, pi_loss (NaN
        without actor step)] and ``td`` (B,) = max(|delta_1|, |delta_2|), both detached.
        ``zero_grads`` zeroes the gradients in place instead of freeing them (graph capture)."""
        q_loss, stats, e1, e2 = self._run("critic_loss", b, noise)
        self.q_opt.zero_grad(set_to_none=not zero_grads)
        q_loss.backward()
        self.q_opt.step()
        if with_actor:
            for p in self._critic_params:
                p.requires_grad_(False)
            pi_loss = self._run("actor_loss", b)
            self.pi_opt.zero_grad(set_to_none=not zero_grads)
            pi_loss.backward()
            self.pi_opt.step()
            for p in self._critic_params:
                p.requires_grad_(True)
            self.soft_update()
            last = pi_loss.detach().reshape(1)
        else:
            last = torch.full((1,), float("nan"), device=stats.device)
        with torch.no_grad():
            td = torch.maximum(e1.abs(), e2.abs())
        return torch.cat([stats, last]), td

    def _graph_step(self, b: TensorBatch, noise: torch.Tensor,
                    with_actor: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_step` through a CUDA graph (captured on first use per ``with_actor``): the
        batch and the noise are copied into the graph's static inputs, then it is replayed."""
        entry = self._graphs.get(with_actor)
        if entry is None:
            static_b = TensorBatch._make([*(x.clone() for x in b[:-1]), b.indices])
            static_noise = noise.clone()
            # gradients must exist (outside the graph pool) and be zeroed in place inside it
            for group in (self.q_opt.param_groups, self.pi_opt.param_groups):
                for p in (p for g in group for p in g["params"]):
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
            torch.cuda.synchronize(self.device)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                stats, td = self._step(static_b, static_noise, with_actor, zero_grads=True)
            entry = (graph, static_b, static_noise, stats, td)
            self._graphs[with_actor] = entry
        graph, static_b, static_noise, stats, td = entry
        for dst, src in zip(static_b[:-1], b[:-1], strict=True):
            dst.copy_(src, non_blocking=True)
        static_noise.copy_(noise)
        graph.replay()
        return stats.clone(), td.clone()

    def update(self, batch: Batch | TensorBatch, return_td: bool = True, to_host: bool = True
               ) -> dict[str, Any]:
        """One critic update (and, every ``policy_delay`` calls, an actor + target update).

        With ``to_host`` (default) returns a dict with ``q_loss``, ``q1``, ``q2`` (mean values),
        ``pi_loss`` (or ``None`` when the policy was not updated) as floats, and ``td_error``
        (B,) NumPy array of ``max(|delta_1|, |delta_2|)`` for prioritized replay (``None``
        unless ``return_td``).  With ``to_host=False`` nothing is copied to the host (no device
        synchronisation): ``stats`` is the (4,) tensor ``[q_loss, q1, q2, pi_loss or NaN]`` and
        ``td_error`` a (B,) tensor on the device; see :func:`stats_dict` to read them later in
        one transfer.  With ``TD3Config.cuda_graph`` on CUDA the update runs as a replayed
        CUDA graph after ``graph_warmup`` eager updates.
        """
        cfg = self.config
        b = self.to_tensors(batch)
        noise = self._target_noise(b.obs.shape[0])
        with_actor = (self.n_updates + 1) % cfg.policy_delay == 0
        if not self.use_graph:
            stats, td = self._step(b, noise, with_actor)
        elif self.n_updates >= max(cfg.graph_warmup, cfg.policy_delay):
            # both Adam states exist by now (the first actor step was eager)
            stats, td = self._graph_step(b, noise, with_actor)
        else:  # eager warm-up on a side stream, as CUDA-graph capture wants
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                stats, td = self._step(b, noise, with_actor)
            torch.cuda.current_stream(self.device).wait_stream(side)
        self.n_updates += 1
        if not to_host:
            return {"stats": stats, "td_error": td if return_td else None}
        out = stats_dict(stats.tolist())  # one device-to-host transfer for all statistics
        out["td_error"] = td.cpu().numpy() if return_td else None
        return out

    @torch.no_grad()
    def soft_update(self) -> None:
        """Polyak averaging ``targ <- polyak * targ + (1 - polyak) * net`` of all targets."""
        torch._foreach_lerp_(self._tgt, self._src, 1.0 - self.config.polyak)

    # ------------------------------------------------------------------ persistence
    def modules(self) -> dict[str, torch.nn.Module]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "actor_targ": self.actor_targ,
            "critic_targ": self.critic_targ,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"pi_opt": self.pi_opt, "q_opt": self.q_opt}

    def fix_optimizer_flags(self) -> None:
        """After loading optimizer states: keep this agent's ``capturable`` setting (loading
        takes the saved one, and a CUDA graph needs ``capturable``)."""
        for optimizer in self.optimizers().values():
            for group in optimizer.param_groups:
                group["capturable"] = self.use_graph
