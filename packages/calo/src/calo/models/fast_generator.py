"""Fast inference path of the CaloGAN generator: the same function, re-associated for speed.

The generator of :mod:`calo.models.calogan` is evaluated layer by layer in (B, C, H, W) form
during training.  For inference (eval mode, no gradients) this module builds an equivalent
"plan" from the current weights, which computes the same outputs (to float rounding) with far
less work and memory traffic:

1. **Dense -> Conv2D folded.**  In CaloGAN (and LAGAN) the Dense layer is followed by the 2x2
   'same' Conv2D with no nonlinearity in between, so both are one linear map of the latent
   vector.  The conv is applied once to the Dense weight matrix (treated as ``latent_dim``
   images) and to its bias; the three streams are stacked into one matrix, so the generator's
   first stage is a single GEMM of (sum_s H_s W_s 16) x latent_dim = 12,768 x 1,024 instead of
   28,728 x 1,024 plus three convolutions.
2. **BatchNorm (running statistics) folded** into the next locally connected layer (a per
   input-channel scale of its weights and a shift of its bias).
3. **Batch-last layout.**  Activations are stored as (positions, channels, batch), positions
   flattened row-major with the row stride of the stream's padded grid.  A locally connected
   layer is then, per kernel row, one batched matrix product over positions, (O, kw C) x
   (kw C, B), whose right operand is a strided *view* of the input (the kw neighbouring
   positions of a row are adjacent in memory): no patch tensor, no copies.  Positions in the
   "wrap-around" columns of each row are computed and ignored.
4. **Two-channel softmax as a sigmoid.**  The in-painting attention mixes two images with a
   softmax over two logits, which equals a sigmoid of their difference, so the 3x3 locally
   connected layer is evaluated with the difference of its two output kernels.

:func:`build_plan` makes the plan from a :class:`~calo.models.calogan.CaloGANGenerator`;
:func:`run_plan` evaluates it.  The generator caches the plan and rebuilds it whenever a weight
or a BatchNorm statistic changes (tensor version counters), so training, ``load_state_dict`` and
inference can be mixed freely.  Tests compare this path with the layer-by-layer reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..geometry import LAYERS
from .layers import LEAK, LocallyConnected2d, pad_same_2x2

if TYPE_CHECKING:  # the generator builds plans of itself; no import at run time (no cycle)
    from .calogan import CaloGANGenerator

__all__ = ["GeneratorPlan", "build_plan", "run_plan"]


@dataclass
class _LCPlan:
    """A locally connected layer in batch-last form.

    ``weights[di]``: (n_out, O, kw * C) for kernel row di; ``bias``: (n_out, O, 1) or None;
    ``row_stride``: positions per row of the (flattened) input and output grids;
    ``n_out``: flat output positions computed ((oh - 1) * row_stride + ow).
    """

    weights: list[torch.Tensor]
    bias: torch.Tensor | None
    row_stride: int
    n_out: int
    in_channels: int

    def flops_per_shower(self) -> int:
        return sum(2 * w.shape[0] * w.shape[1] * w.shape[2] for w in self.weights)


@dataclass
class _StreamPlan:
    rows: int
    cols: int
    offset: int  # first row of this stream in the stacked first-stage output
    channels: int  # Conv2D output channels (16 in the paper)
    lc1: _LCPlan
    lc2: _LCPlan


@dataclass
class GeneratorPlan:
    """Folded weights of a generator (see the module docstring)."""

    weight: torch.Tensor  # (sum_s H_s W_s C, latent_dim), C = 16 in the paper
    bias: torch.Tensor  # (sum_s H_s W_s C, 1)
    streams: list[_StreamPlan]
    attention: list[_LCPlan]  # [layer 0 -> 1, layer 1 -> 2] or empty
    leak: float

    def flops_per_shower(self) -> int:
        """Multiply-adds x 2 that :func:`run_plan` executes per shower (matrix products only)."""
        flops = 2 * self.weight.shape[0] * self.weight.shape[1]
        for s in self.streams:
            flops += s.lc1.flops_per_shower() + s.lc2.flops_per_shower()
        flops += sum(a.flops_per_shower() for a in self.attention)
        return flops


def _lc_plan(lc: LocallyConnected2d, row_stride: int, scale: torch.Tensor | None = None,
             shift: torch.Tensor | None = None, out_diff: bool = False) -> _LCPlan:
    """Batch-last form of ``lc`` applied to ``scale[c] * x + shift[c]`` (folded BatchNorm).

    ``out_diff``: keep only output channel 0 minus output channel 1 (two-way softmax logits).
    """
    if lc.stride != (1, 1):
        raise ValueError("the fast path handles stride-1 locally connected layers only")
    kh, kw = lc.kernel_size
    oh, ow = lc.out_size
    c_in, c_out = lc.in_channels, lc.out_channels
    w = lc.weight.detach().view(oh, ow, c_in, kh, kw, c_out)
    bias = lc.bias.detach().permute(1, 2, 0) if lc.bias is not None else None  # (oh, ow, O)
    if shift is not None:
        extra = torch.einsum("hwcijo,c->hwo", w, shift)
        bias = extra if bias is None else bias + extra
    if scale is not None:
        w = w * scale.view(1, 1, -1, 1, 1, 1)
    if out_diff:
        w = w[..., 0:1] - w[..., 1:2]
        bias = None if bias is None else bias[..., 0:1] - bias[..., 1:2]
        c_out = 1
    n_out = (oh - 1) * row_stride + ow
    weights = []
    for di in range(kh):
        wd = w[:, :, :, di].permute(0, 1, 4, 3, 2).reshape(oh, ow, c_out, kw * c_in)
        wd = F.pad(wd, (0, 0, 0, 0, 0, row_stride - ow))
        weights.append(wd.reshape(oh * row_stride, c_out, kw * c_in)[:n_out].contiguous())
    b = None
    if bias is not None:
        b = F.pad(bias, (0, 0, 0, row_stride - ow))
        b = b.reshape(oh * row_stride, c_out, 1)[:n_out].contiguous()
    return _LCPlan(weights, b, row_stride, n_out, c_in)


def _lc_run(x: torch.Tensor, plan: _LCPlan) -> torch.Tensor:
    """x (positions, C, B) contiguous, row stride ``plan.row_stride`` -> (n_out, O, B)."""
    c, b = x.shape[1], x.shape[2]
    kw_c = plan.weights[0].shape[2]

    def view(di: int) -> torch.Tensor:  # the kw neighbours of kernel row di, no copy
        return x.as_strided((plan.n_out, kw_c, b), (c * b, b, 1),
                            x.storage_offset() + di * plan.row_stride * c * b)

    first = plan.weights[0]
    out = (torch.bmm(first, view(0)) if plan.bias is None
           else torch.baddbmm(plan.bias, first, view(0)))
    for di, weight in enumerate(plan.weights[1:], start=1):
        out.baddbmm_(weight, view(di))
    return out


@torch.no_grad()
def build_plan(generator: CaloGANGenerator) -> GeneratorPlan:
    """Fold the weights of a :class:`~calo.models.calogan.CaloGANGenerator` (eval semantics:
    BatchNorm uses its running statistics)."""
    weights, biases, streams = [], [], []
    offset = 0
    for stream, layer in zip(generator.stream_list, LAYERS, strict=True):
        rows, cols = layer.shape
        h, w = rows + 2, cols + 2
        dense_w = stream.dense.weight.detach()  # (h w D, L), D = 36 in the paper
        latent, d = dense_w.shape[1], stream.conv.in_channels
        c = stream.conv.out_channels  # 16 in the paper
        # The Dense weight as `latent` images (L, D, h, w) and the bias as one image.
        images = dense_w.view(h, w, d, latent).permute(3, 2, 0, 1)
        bias_img = stream.dense.bias.detach().view(1, h, w, d).permute(0, 3, 1, 2)
        conv_w = F.conv2d(pad_same_2x2(images), stream.conv.weight.detach())  # (L, C, h, w)
        conv_bias, bn = stream.conv.bias, stream.bn
        if conv_bias is None or bn.running_mean is None or bn.running_var is None:
            raise ValueError("the fast path needs the Conv2D bias and BatchNorm statistics")
        conv_b = F.conv2d(pad_same_2x2(bias_img), stream.conv.weight.detach(),
                          conv_bias.detach())  # (1, C, h, w)
        weights.append(conv_w.permute(2, 3, 1, 0).reshape(h * w * c, latent))
        biases.append(conv_b.permute(2, 3, 1, 0).reshape(h * w * c, 1))
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias.detach() - bn.running_mean * scale
        lc1 = _lc_plan(stream.lc1, w, scale, shift)
        lc2 = _lc_plan(stream.lc2, w)
        streams.append(_StreamPlan(rows, cols, offset, c, lc1, lc2))
        offset += h * w * c
    attention = []
    if generator.config.attention:
        for attn, layer in zip(generator.attention_list, LAYERS[1:], strict=True):
            attention.append(_lc_plan(attn.lc, layer.shape[1] + 2, out_diff=True))
    return GeneratorPlan(torch.cat(weights).contiguous(), torch.cat(biases).contiguous(),
                         streams, attention, LEAK)


def _image(x: torch.Tensor, rows: int, cols: int, row_stride: int) -> torch.Tensor:
    """(n_out, 1, B) flat with row stride -> (rows, cols, B)."""
    b = x.shape[-1]
    x = F.pad(x.view(-1, b), (0, 0, 0, rows * row_stride - x.shape[0]))
    return x.view(rows, row_stride, b)[:, :cols]


def _attend(primary: torch.Tensor, carry: torch.Tensor, plan: _LCPlan) -> torch.Tensor:
    """Two-way softmax mix of (rows, cols, B) images; the logit difference from ``plan``."""
    rows, cols, b = primary.shape
    padded = primary.new_zeros(rows + 2, cols + 2, 2, b)
    padded[1:-1, 1:-1, 0] = primary
    padded[1:-1, 1:-1, 1] = carry
    logit = _image(_lc_run(padded.view(-1, 2, b), plan), rows, cols, plan.row_stride)
    return torch.addcmul(carry, torch.sigmoid(logit), primary - carry)


def run_plan(plan: GeneratorPlan, z: torch.Tensor, energy_gev: torch.Tensor
             ) -> list[torch.Tensor]:
    """Generator output for latent z (B, L) and energies (B, 1) GeV: three (B, 1, r, c) GeV
    images, equal (to float rounding) to the layer-by-layer forward pass in eval mode."""
    b = z.shape[0]
    h = z * (energy_gev.view(-1, 1) / 100.0)
    first = torch.addmm(plan.bias, plan.weight, h.t())  # (sum H W C, B)
    F.leaky_relu_(first, plan.leak)
    images = []
    for s in plan.streams:
        h_pad, w_pad = s.rows + 2, s.cols + 2
        n = h_pad * w_pad * s.channels
        x = first[s.offset:s.offset + n].view(h_pad * w_pad, s.channels, b)
        x = F.leaky_relu_(_lc_run(x, s.lc1), plan.leak)
        images.append(_image(_lc_run(x, s.lc2), s.rows, s.cols, w_pad))
    img0, img1, img2 = images
    if plan.attention:
        r0, c0 = LAYERS[0].shape
        r1, c1 = LAYERS[1].shape
        # layer 0 upsampled (4, 1) [nearest] then average-pooled (1, 8) -> 12 x 12
        carry = img0.reshape(r0, c1, c0 // c1, b).mean(2).repeat_interleave(r1 // r0, dim=0)
        img1 = _attend(img1, carry, plan.attention[0])
        carry = img1.reshape(r1, img2.shape[1], c1 // img2.shape[1], b).mean(2)
        img2 = _attend(img2, carry, plan.attention[1])
    return [F.relu(img).permute(2, 0, 1).unsqueeze(1).contiguous()
            for img in (img0, img1, img2)]

