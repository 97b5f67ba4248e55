"""CaloGAN: a PyTorch port of the generator and discriminator of Paganini, de Oliveira and
Nachman, "CaloGAN" (PRD 97 014021, 2018; arXiv 1705.02355).

Generator: the latent vector (``latent_dim`` = 1024 in the paper) is multiplied by E / 100
(E in GeV) and fed to three LAGAN-style streams, one per read-out layer:
Dense -> (rows+2, cols+2, 36) -> Conv2D(16, 2x2, same) + LeakyReLU + BatchNorm ->
LocallyConnected2D(6, 2x2) + LeakyReLU -> LocallyConnected2D(1, 2x2, no bias).  Inter-layer
attention ("in-painting") mixes layer 0 (upsampled (4, 1), average-pooled (1, 8) to 12 x 12) into
layer 1, and layer 1 (pooled (1, 2) to 12 x 6) into layer 2, with a 3x3 locally connected layer
and a softmax over the two channels.  A ReLU makes the outputs non-negative with exact zeros.

Discriminator: per layer Conv2D(64, 2x2) and three LocallyConnected2D blocks (16, 8, 8) with
LeakyReLU and BatchNorm, minibatch discrimination on those features and on the sparsity, the
sparsity itself; then layer energies / 10, total / 100, |E_tot - E| and 10 * [|E_tot - E| > 5 GeV],
minibatch discrimination on the layer energies; a sigmoid real/fake output.  The second output
of the original, the total energy, is computed (not learned) and enters the generator loss as
an MAE auxiliary term.

Several particle types (the original's ACGAN mode, ``n_classes`` > 1 in ``train.py``): the
generator multiplies z element-wise by a learned embedding of the requested particle label
(Keras ``Embedding(n_classes, latent)``, glorot_normal) before the E / 100 scaling, and the
discriminator has an auxiliary classification output on the same features as the real/fake
output (``Dense(1, sigmoid)`` for two particle types; see :class:`CaloGANDiscriminator` for more).

Images inside the networks are in GeV (the public files' MeV / 1000), so the 5 GeV energy well
of the paper keeps its meaning; :meth:`CaloGANGenerator.sample_showers` returns MeV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry import LAYERS
from .fast_generator import GeneratorPlan, build_plan, run_plan
from .layers import (
    LEAK,
    LocallyConnected2d,
    MinibatchDiscrimination,
    conv2d_one_channel,
    keras_glorot_normal_,
    pad_same_2x2,
)

__all__ = ["CaloGAN", "CaloGANConfig", "CaloGANDiscriminator", "CaloGANGenerator",
           "DiscriminatorOutput"]

_LEAK = LEAK  # Keras LeakyReLU default slope
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01  # Keras BatchNormalization defaults


@dataclass
class CaloGANConfig:
    """Architecture of CaloGAN (defaults: the paper's).

    latent_dim: size of z (1024 in the paper).  attention: inter-layer in-painting attention.
    mbd_kernels, mbd_dims: minibatch discrimination size (10 x 10).  sparsity_features: feed the
    sparsity and its minibatch discrimination to the discriminator.  Channel counts (the paper's
    by default): generator Dense image channels (36), Conv2D (16) and first locally connected
    layer (6); discriminator Conv2D (64) and its three locally connected layers (16, 8, 8).
    """

    latent_dim: int = 1024
    attention: bool = True
    mbd_kernels: int = 10
    mbd_dims: int = 10
    sparsity_features: bool = True
    g_dense_channels: int = 36
    g_conv_channels: int = 16
    g_lc_channels: int = 6
    d_conv_channels: int = 64
    d_lc_channels: tuple[int, int, int] = (16, 8, 8)

    def __post_init__(self) -> None:
        sizes = (self.latent_dim, self.mbd_kernels, self.mbd_dims, self.g_dense_channels,
                 self.g_conv_channels, self.g_lc_channels, self.d_conv_channels,
                 *self.d_lc_channels)
        if len(self.d_lc_channels) != 3 or min(sizes) < 1:
            raise ValueError(f"CaloGAN sizes must be positive (d_lc_channels: three), got {self}")


def _keras_init(module: nn.Linear | nn.Conv2d, kernel: str = "glorot_uniform") -> None:
    """Keras' initialisers: kernel ``glorot_uniform`` (Keras' default) or ``he_uniform``
    (uniform with limit sqrt(6 / fan_in)), bias zero."""
    if kernel == "glorot_uniform":
        nn.init.xavier_uniform_(module.weight)
    elif kernel == "he_uniform":
        nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")  # limit sqrt(6 / fan_in)
    else:
        raise ValueError(f"unknown initialiser {kernel!r}")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


class _GeneratorStream(nn.Module):
    def __init__(self, config: CaloGANConfig, rows: int, cols: int) -> None:
        super().__init__()
        self.rows, self.cols = rows, cols
        dense, conv, lc = config.g_dense_channels, config.g_conv_channels, config.g_lc_channels
        self.dense_channels = dense
        self.dense = nn.Linear(config.latent_dim, (rows + 2) * (cols + 2) * dense)
        _keras_init(self.dense)  # Keras Dense: glorot_uniform, zero bias
        self.conv = nn.Conv2d(dense, conv, 2)
        _keras_init(self.conv, "he_uniform")  # as the original's Conv2D(16, kernel he_uniform)
        self.bn = nn.BatchNorm2d(conv, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.lc1 = LocallyConnected2d(conv, lc, (rows + 2, cols + 2), (2, 2))
        self.lc2 = LocallyConnected2d(lc, 1, (rows + 1, cols + 1), (2, 2), bias=False,
                                      init="glorot_normal")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.dense(h).view(-1, self.rows + 2, self.cols + 2, self.dense_channels)
        x = x.permute(0, 3, 1, 2)
        x = self.bn(F.leaky_relu(self.conv(pad_same_2x2(x)), _LEAK))
        x = F.leaky_relu(self.lc1(x), _LEAK)
        return self.lc2(x)  # (B, 1, rows, cols)


class _InpaintingAttention(nn.Module):
    """Softmax-weighted mix of a layer image with the image carried over from the layer before."""

    def __init__(self, size: tuple[int, int], bias_init: float = -10.0) -> None:
        super().__init__()
        self.lc = LocallyConnected2d(2, 2, (size[0] + 2, size[1] + 2), (3, 3),
                                     init="glorot_uniform")
        with torch.no_grad():
            # As the original's bias initialiser: 0 for the primary channel, ``bias_init`` (-10)
            # only for the carry-over channel, so training starts from the layer's own image.
            bias = self.lc.bias
            if bias is not None:
                bias.zero_()
                bias[1].fill_(bias_init)

    def forward(self, primary: torch.Tensor, carryover: torch.Tensor) -> torch.Tensor:
        x = torch.cat([primary, carryover], dim=1)
        weights = torch.softmax(self.lc(F.pad(x, (1, 1, 1, 1))), dim=1)
        return (weights * x).sum(dim=1, keepdim=True)


class CaloGANGenerator(nn.Module):
    """CaloGAN generator: (z (B, latent), E (B, 1) GeV[, particle labels (B,)]) -> three images
    (B, 1, r, c) in GeV.

    ``n_classes`` > 1 is the original's multi-particle (ACGAN) generator: a label embedding
    ``class_embedding`` (n_classes, latent), Keras ``Embedding`` with glorot_normal, multiplies z
    element-wise (``multiply([latent, emb])`` in the original ``train.py``), then the E / 100
    scaling as in the one-particle generator.
    """

    def __init__(self, config: CaloGANConfig | None = None, n_classes: int = 1) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be at least 1, got {n_classes}")
        self.config = config or CaloGANConfig()
        self.n_classes = n_classes
        self.streams = nn.ModuleList(
            [_GeneratorStream(self.config, *layer.shape) for layer in LAYERS]
        )
        if self.config.attention:
            self.attn01 = _InpaintingAttention(LAYERS[1].shape)
            self.attn12 = _InpaintingAttention(LAYERS[2].shape)
        if n_classes > 1:
            # created last, so that a one-particle generator draws its initial weights as before
            self.class_embedding = nn.Embedding(n_classes, self.config.latent_dim)
            with torch.no_grad():  # Keras fans of a 2-D weight: (n_classes, latent)
                keras_glorot_normal_(self.class_embedding.weight, n_classes,
                                     self.config.latent_dim)

    def condition(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """z (B, latent) times the embedding of ``labels`` (B,) (int64 in [0, n_classes)) for a
        multi-particle generator; z unchanged for one particle type (``labels`` must be None or
        all zero)."""
        if self.n_classes == 1:
            if labels is not None and bool((labels != 0).any()):
                raise ValueError("this generator was trained on one particle type: label 0 only")
            return z
        if labels is None:
            raise ValueError(f"this generator was trained on {self.n_classes} particle types: "
                             "give the particle labels")
        labels = labels.reshape(-1).long()
        if labels.shape[0] != z.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {z.shape[0]} latent vectors")
        if bool(((labels < 0) | (labels >= self.n_classes)).any()):
            raise ValueError(f"particle labels must be in [0, {self.n_classes})")
        return z * self.class_embedding(labels).to(z.dtype)

    def forward(self, z: torch.Tensor, energy_gev: torch.Tensor,
                labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Images (B, 1, r, c) in GeV.  In eval mode without gradients (and without autocast)
        this runs the folded fast path of :mod:`calo.models.fast_generator`, which computes the
        same function; otherwise :meth:`forward_reference`.  ``labels`` (B,): particle labels
        of a multi-particle generator (None for one particle type)."""
        if (not self.training and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled(z.device.type)
                and z.dtype == self.dtype):
            return run_plan(self.inference_plan(), self.condition(z, labels),
                            energy_gev.to(z.dtype))
        return self.forward_reference(z, energy_gev, labels)

    @property
    def stream_list(self) -> list[_GeneratorStream]:
        """The three per-layer streams, typed."""
        return cast("list[_GeneratorStream]", list(self.streams))

    @property
    def attention_list(self) -> list[_InpaintingAttention]:
        """The in-painting attentions (layer 0 -> 1, layer 1 -> 2), or none."""
        if not self.config.attention:
            return []
        return [self.attn01, self.attn12]

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point type of the weights."""
        return next(self.parameters()).dtype

    def inference_plan(self) -> GeneratorPlan:
        """The folded weights for the fast path, rebuilt whenever a parameter or BatchNorm
        statistic has changed since the last call (tensor version counters)."""
        tensors = [*self.parameters(), *self.buffers()]
        key = tuple((t.data_ptr(), t._version, t.device) for t in tensors)
        cached = self.__dict__.get("_plan_cache")
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                cached = (key, build_plan(self))
            self.__dict__["_plan_cache"] = cached
        return cached[1]

    def forward_reference(self, z: torch.Tensor, energy_gev: torch.Tensor,
                          labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Layer-by-layer forward pass (training; the definition the fast path must match)."""
        h = self.condition(z, labels) * (energy_gev.view(-1, 1) / 100.0)
        img0, img1, img2 = (stream(h) for stream in self.streams)
        if self.config.attention:
            zero2one = F.avg_pool2d(F.interpolate(img0, scale_factor=(4, 1), mode="nearest"),
                                    kernel_size=(1, 8))
            img1 = self.attn01(img1, zero2one)
            one2two = F.avg_pool2d(img1, kernel_size=(1, 2))
            img2 = self.attn12(img2, one2two)
        return [F.relu(img0), F.relu(img1), F.relu(img2)]

    @torch.no_grad()
    def sample_showers(self, energy_gev: torch.Tensor, generator: torch.Generator | None = None,
                       labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Generate showers for incident energies (B,) or (B, 1) in GeV; cells in MeV.
        ``labels`` (B,): the particle label of each shower (multi-particle generator only)."""
        energy_gev = energy_gev.reshape(-1, 1)
        z = torch.randn(energy_gev.shape[0], self.config.latent_dim, device=energy_gev.device,
                        dtype=energy_gev.dtype, generator=generator)
        if labels is not None:
            labels = labels.to(energy_gev.device)
        images = self.forward(z, energy_gev, labels)
        out = {layer.name: 1000.0 * img[:, 0].float() for layer, img in zip(LAYERS, images,
                                                                            strict=True)}
        out["energy"] = energy_gev.float()
        return out


def _sparsity(image: torch.Tensor) -> torch.Tensor:
    return (image > 0).flatten(1).float().mean(dim=1, keepdim=True)


class _DiscriminatorStream(nn.Module):
    def __init__(self, config: CaloGANConfig, rows: int, cols: int) -> None:
        super().__init__()
        self.config = config
        c0, (c1, c2, c3) = config.d_conv_channels, config.d_lc_channels
        self.conv = nn.Conv2d(1, c0, 2)
        _keras_init(self.conv)
        self.lc1 = LocallyConnected2d(c0, c1, (rows + 2, cols + 2), (3, 3), stride=(1, 2),
                                      init="glorot_uniform")
        h, w = self.lc1.out_size
        self.bn1 = nn.BatchNorm2d(c1, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.lc2 = LocallyConnected2d(c1, c2, (h + 2, w + 2), (2, 2), init="glorot_uniform")
        h, w = self.lc2.out_size
        self.bn2 = nn.BatchNorm2d(c2, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.lc3 = LocallyConnected2d(c2, c3, (h + 2, w + 2), (2, 2), stride=(1, 2),
                                      init="glorot_uniform")
        h, w = self.lc3.out_size
        self.bn3 = nn.BatchNorm2d(c3, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.n_flat = c3 * h * w
        self.mbd = MinibatchDiscrimination(self.n_flat, config.mbd_kernels, config.mbd_dims)
        self.n_features = self.n_flat + config.mbd_kernels
        if config.sparsity_features:
            self.mbd_sparsity = MinibatchDiscrimination(1, config.mbd_kernels, config.mbd_dims)
            self.n_features += 1 + config.mbd_kernels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(conv2d_one_channel(pad_same_2x2(image), self.conv), _LEAK)
        x = self.bn1(F.leaky_relu(self.lc1(F.pad(x, (1, 1, 1, 1))), _LEAK))
        x = self.bn2(F.leaky_relu(self.lc2(F.pad(x, (1, 1, 1, 1))), _LEAK))
        x = self.bn3(F.leaky_relu(self.lc3(F.pad(x, (1, 1, 1, 1))), _LEAK))
        x = x.flatten(1)
        features = [x, self.mbd(x)]
        if self.config.sparsity_features:
            sparsity = _sparsity(image)
            features += [sparsity, self.mbd_sparsity(sparsity)]
        return torch.cat(features, dim=1)


class DiscriminatorOutput(NamedTuple):
    """The discriminator's outputs: ``logit`` (B, 1) of P(real); ``total`` (B, 1) GeV, the
    summed image energy; ``aux`` the auxiliary classifier's logits over the particle types
    ((B, 1): logit of label 1, for two types; (B, n_classes) for more; None for one type)."""

    logit: torch.Tensor
    total: torch.Tensor
    aux: torch.Tensor | None


class CaloGANDiscriminator(nn.Module):
    """CaloGAN discriminator: (images in GeV, E (B, 1) GeV) -> :class:`DiscriminatorOutput`
    (P(real) logit (B, 1), E_tot (B, 1), auxiliary logits or None).

    The logit is returned (apply a sigmoid for the probability); the loss uses
    ``binary_cross_entropy_with_logits``, which is the same objective, numerically safer.

    ``n_classes`` > 1 adds the original's ACGAN auxiliary output on the same features ``p``: for two particle types ``Dense(1, sigmoid)`` trained with binary
    cross-entropy, exactly as the original.  For more than two, the original keeps the
    ``Dense(1, sigmoid)`` and switches to ``sparse_categorical_crossentropy``, which cannot
    classify three types (one output unit); here the head is ``Dense(n_classes)`` with a
    softmax and the same sparse categorical cross-entropy (a deviation, needed for it to work).
    """

    def __init__(self, config: CaloGANConfig | None = None, n_classes: int = 1) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be at least 1, got {n_classes}")
        self.config = config or CaloGANConfig()
        self.n_classes = n_classes
        self.streams = nn.ModuleList(
            [_DiscriminatorStream(self.config, *layer.shape) for layer in LAYERS]
        )
        self.mbd_energy = MinibatchDiscrimination(3, self.config.mbd_kernels, self.config.mbd_dims)
        streams = cast("list[_DiscriminatorStream]", list(self.streams))
        n_in = sum(s.n_features for s in streams) + 3 + 1 + 1 + 1 + self.config.mbd_kernels
        self.out = nn.Linear(n_in, 1)
        _keras_init(self.out)
        if n_classes > 1:
            # Keras Dense: glorot_uniform, zero bias (created last: a one-particle
            # discriminator draws its initial weights as before)
            self.aux = nn.Linear(n_in, 1 if n_classes == 2 else n_classes)
            _keras_init(self.aux)

    def forward(self, images: list[torch.Tensor], energy_gev: torch.Tensor
                ) -> DiscriminatorOutput:
        """Real/fake logit (B, 1), total energy (B, 1) GeV and the auxiliary logits of a
        multi-particle discriminator (None for one particle type)."""
        energy_gev = energy_gev.view(-1, 1)
        features = [stream(img) for stream, img in zip(self.streams, images, strict=True)]
        energies = torch.cat([img.flatten(1).sum(dim=1, keepdim=True) for img in images], dim=1)
        total = energies.sum(dim=1, keepdim=True)
        well = (total - energy_gev).abs()
        too_big = 10.0 * (well > 5.0).float()
        p = torch.cat([*features, energies / 10.0, total / 100.0, well, too_big,
                       self.mbd_energy(energies)], dim=1)
        return DiscriminatorOutput(self.out(p), total,
                                   self.aux(p) if self.n_classes > 1 else None)


class CaloGAN(nn.Module):
    """Generator and discriminator together (one ``state_dict`` for checkpoints);
    ``n_classes`` > 1: the multi-particle (ACGAN) networks."""

    def __init__(self, config: CaloGANConfig | None = None, n_classes: int = 1) -> None:
        super().__init__()
        self.config = config or CaloGANConfig()
        self.n_classes = n_classes
        self.generator = CaloGANGenerator(self.config, n_classes)
        self.discriminator = CaloGANDiscriminator(self.config, n_classes)

    def sample_showers(self, energy_gev: torch.Tensor, generator: torch.Generator | None = None,
                       labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Showers (MeV cells) for energies (B,) GeV; ``labels`` (B,): particle labels of a
        multi-particle model."""
        return self.generator.sample_showers(energy_gev, generator, labels)


def auxiliary_loss(aux: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"
                   ) -> torch.Tensor:
    """The ACGAN auxiliary classification loss of the original ``train.py``: binary
    cross-entropy of ``sigmoid(aux)`` (B, 1) against labels (B,) in {0, 1} for two particle
    types, sparse categorical cross-entropy of ``softmax(aux)`` (B, K) for K > 2 (see
    :class:`CaloGANDiscriminator`).  Per shower with ``reduction="none"`` (B,)."""
    if aux.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(aux[:, 0], labels.to(aux.dtype),
                                                  reduction=reduction)
    return F.cross_entropy(aux, labels.long(), reduction=reduction)


def auxiliary_prediction(aux: torch.Tensor) -> torch.Tensor:
    """Predicted particle labels (B,) from the auxiliary logits."""
    if aux.shape[1] == 1:
        return (aux[:, 0] > 0).long()
    return aux.argmax(dim=1)


def generator_flops_per_shower(config: CaloGANConfig | None = None) -> float:
    """FLOPs (2 x multiply-adds) of one layer-by-layer generator forward pass, counted from the
    shapes of the actual layers (Dense, Conv2D, locally connected) of a generator built from
    ``config``: about 63 MFLOP for the paper's architecture, 94 % of it in the Dense layers."""
    return layer_flops(CaloGANGenerator(config))["total"]


def layer_flops(generator: CaloGANGenerator) -> dict[str, float]:
    """FLOPs per shower of each matrix-product layer of ``generator`` (reference path), from
    the input and output shapes seen by forward hooks on one shower: Linear ``2 in out``,
    Conv2d ``2 (C_in kh kw) C_out H_out W_out``, locally connected ``2 fan_in C_out H_out W_out``.
    Returns {module name: FLOPs, ..., "total": sum}."""
    counts: dict[str, float] = {}
    hooks = []

    def hook(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def fn(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            out = output[0].numel()  # one shower
            if isinstance(module, nn.Linear):
                fan_in = module.in_features
            elif isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            elif isinstance(module, LocallyConnected2d):
                fan_in = module.weight.shape[1]
            else:
                raise TypeError(f"no FLOP count for {type(module).__name__}")
            counts[name] = counts.get(name, 0.0) + 2.0 * fan_in * out
        return fn

    for name, module in generator.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d | LocallyConnected2d):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = generator.training
    try:
        generator.eval()
        device = next(generator.parameters()).device
        with torch.no_grad():
            generator.forward_reference(torch.zeros(1, generator.config.latent_dim, device=device),
                                        torch.ones(1, 1, device=device))
    finally:
        generator.train(was_training)
        for h in hooks:
            h.remove()
    counts["total"] = sum(counts.values())
    return counts


__all__ += ["auxiliary_loss", "auxiliary_prediction", "generator_flops_per_shower", "layer_flops"]
