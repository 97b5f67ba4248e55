"""Building blocks of the CaloGAN networks (PyTorch versions of the Keras layers used in
Paganini et al., PRD 97 014021, and the LAGAN code it builds on)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from physml_core.parallel import gather_rows, use_global_batch_norm, world_size

__all__ = ["LEAK", "TRUNCATED_NORMAL_SD", "LocallyConnected2d", "MinibatchDiscrimination",
           "conv2d_one_channel", "global_batch", "keras_fan_init_", "keras_glorot_normal_",
           "pad_same_2x2"]

#: Slope of CaloGAN's LeakyReLUs (the Keras default, 0.3); shared by the layer-by-layer
#: networks and the folded inference path.
LEAK = 0.3


# ------------------------------------------------------------- batch statistics over ranks
#
# Batch normalisation and minibatch discrimination depend on the whole batch.  Under DDP
# (torchrun) each process holds a share of the global batch; ``global_batch(model)`` makes
# these layers use the global batch of all processes with exact gradients (core's
# physml_core.parallel: GlobalBatchNorm, gather_rows), so a data-parallel run is the
# one-process run to float rounding.

def global_batch(model: nn.Module) -> nn.Module:
    """Let the batch-dependent layers of ``model`` (batch norm, :class:`MinibatchDiscrimination`)
    see the global batch of all processes when several run (DDP); the same as before in one
    process.  Batch norms become :class:`physml_core.parallel.GlobalBatchNorm` (same state
    dict).  Call it before moving the model to its device; returns ``model``."""
    use_global_batch_norm(model)
    for module in model.modules():
        if isinstance(module, MinibatchDiscrimination):
            module.global_batch = True
    return model


#: Standard deviation of a unit normal truncated at +-2 (Keras divides its truncated normal's
#: scale by this, so that the truncated draws have the Glorot standard deviation).
TRUNCATED_NORMAL_SD = 0.87962566103423978


def keras_glorot_normal_(weight: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Keras' ``glorot_normal`` (``VarianceScaling(1, "fan_avg", "truncated_normal")``, Keras
    >= 2.2 and tf.keras): a normal of scale ``sqrt(2 / (fan_in + fan_out)) / 0.8796...`` truncated
    at two scales (values beyond are redrawn), so the draws have standard deviation
    ``sqrt(2 / (fan_in + fan_out))``.  Fills ``weight`` in place and returns it."""
    scale = math.sqrt(2.0 / (fan_in + fan_out)) / TRUNCATED_NORMAL_SD
    return nn.init.trunc_normal_(weight, 0.0, scale, -2.0 * scale, 2.0 * scale)


class LocallyConnected2d(nn.Module):
    """2-D convolution without weight sharing (Keras ``LocallyConnected2D``, 'valid' padding).

    Every output position has its own kernel.  Input (B, C_in, H, W) -> output
    (B, C_out, H_out, W_out) with ``H_out = (H - kh) // sh + 1``.  Implemented as
    a batched matrix product per kernel offset (equivalent to ``unfold`` + per-position matmul,
    which is much slower on the CPU).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        in_size: tuple[int, int],
        kernel_size: tuple[int, int] = (2, 2),
        stride: tuple[int, int] = (1, 1),
        bias: bool = True,
        init: str = "he_uniform",
    ) -> None:
        super().__init__()
        kh, kw = kernel_size
        sh, sw = stride
        h, w = in_size
        if h < kh or w < kw:
            raise ValueError(f"input {in_size} is smaller than the kernel {kernel_size}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = (kh, kw), (sh, sw)
        self.out_size = ((h - kh) // sh + 1, (w - kw) // sw + 1)
        n_pos = self.out_size[0] * self.out_size[1]
        fan_in = in_channels * kh * kw
        if init not in ("he_uniform", "glorot_normal", "glorot_uniform"):
            raise ValueError(f"unknown init {init!r}")
        self.init = init
        self.weight = nn.Parameter(torch.empty(n_pos, fan_in, out_channels))
        self.reset_weight()
        self.bias = nn.Parameter(torch.zeros(out_channels, *self.out_size)) if bias else None

    @torch.no_grad()
    def reset_weight(self, keras_fans: bool = False) -> None:
        """Draw the kernel with its initialiser (``self.init``).  Fans: per output position
        (``kh kw C_in``, ``C_out``) by default; ``keras_fans``: as Keras (>= 2.0.6) computes
        them for its (positions, kh kw C_in, C_out) kernel, like a convolution's, i.e. times
        the number of output positions."""
        n_pos, fan_in, fan_out = self.weight.shape
        if keras_fans:
            fan_in, fan_out = fan_in * n_pos, fan_out * n_pos
        if self.init == "he_uniform":
            limit = math.sqrt(6.0 / fan_in)
            nn.init.uniform_(self.weight, -limit, limit)
        elif self.init == "glorot_normal":
            keras_glorot_normal_(self.weight, fan_in, fan_out)
        else:
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(self.weight, -limit, limit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last (H, W, B, C) layout; one batched matmul per kernel offset accumulates
        # the output without materialising the (B, C*kh*kw, L) patch tensor (memory bound).
        kh, kw = self.kernel_size
        sh, sw = self.stride
        oh, ow = self.out_size
        xs = x.permute(2, 3, 0, 1).contiguous()
        weight = self.weight.view(oh, ow, self.in_channels, kh * kw, self.out_channels)
        out = torch.matmul(xs[0:sh * (oh - 1) + 1:sh, 0:sw * (ow - 1) + 1:sw],
                           weight[:, :, :, 0, :])  # (oh, ow, B, O), kernel offset (0, 0)
        for i in range(kh):
            for j in range(kw):
                if i == j == 0:
                    continue
                view = xs[i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                out = out + torch.matmul(view, weight[:, :, :, i * kw + j, :])
        out = out.permute(2, 3, 0, 1)  # (B, O, oh, ow)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, out_size={self.out_size}")


def pad_same_2x2(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow 'same' padding for a 2x2 kernel: one zero row/column after the data."""
    return F.pad(x, (0, 1, 0, 1))


def conv2d_one_channel(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a 'valid' convolution with ONE input channel, stride 1, no dilation, as a
    matmul over the kernel taps: (B, 1, H, W) -> (B, C_out, H - kh + 1, W - kw + 1).

    oneDNN's direct convolution is slow for a single input channel (about 6x slower forward and
    2.5x slower forward + backward than this on one CPU core for the discriminator's first
    layer); the result is the same function with the same gradients.
    """
    if conv.in_channels != 1 or conv.stride != (1, 1) or conv.dilation != (1, 1) \
            or conv.groups != 1 or conv.padding != (0, 0):
        raise ValueError("conv2d_one_channel needs a 1-channel, stride-1, unpadded Conv2d")
    kh, kw = conv.kernel_size
    h, w = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    taps = torch.stack([x[:, 0, i:i + h, j:j + w] for i in range(kh) for j in range(kw)], -1)
    out = taps @ conv.weight.view(conv.out_channels, kh * kw).t()  # (B, h, w, C_out)
    if conv.bias is not None:
        out = out + conv.bias
    return out.permute(0, 3, 1, 2)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016) as in CaloGAN.

    Features (B, F) are projected to (B, kernels, dims); for each kernel the output is
    ``tanh(sum_j exp(-|M_i - M_j|_1))`` over the batch, shape (B, kernels).
    """

    def __init__(self, in_features: int, kernels: int = 10, dims: int = 10) -> None:
        super().__init__()
        self.kernels, self.dims = kernels, dims
        self.weight = nn.Parameter(torch.empty(in_features, kernels * dims))
        self.reset_weight()

    @torch.no_grad()
    def reset_weight(self, keras_fans: bool = False) -> None:
        """glorot_uniform kernel.  Fans: (``in_features``, ``kernels dims``) of the matrix by
        default; ``keras_fans``: as Keras (>= 2.0.6) computes them for the original's Dense3D
        kernel (kernels, in_features, dims): (``kernels in_features``, ``kernels dims``)."""
        fan_in, fan_out = self.weight.shape
        if keras_fans:
            fan_in *= self.kernels
        # as torch's xavier_uniform_ computes it (same bound to the last bit as before)
        limit = math.sqrt(3.0) * math.sqrt(2.0 / float(fan_in + fan_out))
        nn.init.uniform_(self.weight, -limit, limit)

    global_batch = False  # see global_batch(): compare with the rows of every process

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = (x @ self.weight).view(-1, self.kernels, self.dims)
        m = rows.transpose(0, 1)  # (K, B, D)
        # cdist's L1 kernel: about 3x faster (forward + backward) than the (B, K, D, B) tensor
        # of differences, and the same function and gradient
        if self.global_batch and world_size() > 1:
            others = gather_rows(rows).transpose(0, 1)  # (K, N, D), N: global batch
            l1 = torch.cdist(m, others, p=1.0)  # (K, B, N)
        else:
            l1 = torch.cdist(m, m, p=1.0)  # (K, B, B)
        return torch.tanh(torch.exp(-l1).sum(dim=2)).t()


def keras_fan_init_(model: nn.Module) -> nn.Module:
    """Redraw every locally connected and minibatch-discrimination kernel of ``model`` with
    the fans Keras (>= 2.0.6) gives their kernels (times the number of output positions, and
    times the number of kernels), instead of the per-position fans of the default; biases stay
    as they are.  Returns ``model``."""
    for module in model.modules():
        if isinstance(module, LocallyConnected2d | MinibatchDiscrimination):
            module.reset_weight(keras_fans=True)
    return model
