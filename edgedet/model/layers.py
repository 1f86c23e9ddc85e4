"""Conv/pool building blocks with TensorFlow 'SAME' padding resolved statically.

The EfficientDet family was trained in TF with 'SAME' padding, which pads asymmetrically for stride-2
layers. Resolving it once for the fixed input size keeps forward free of shape arithmetic, so ONNX,
OpenVINO and TensorRT see plain Pad/Conv/MaxPool nodes.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding that TF 'SAME' applies to one spatial dim of length `size`."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def make_act(name: str) -> nn.Module:
    acts = {"silu": nn.SiLU, "swish": nn.SiLU, "relu6": nn.ReLU6, "relu": nn.ReLU}
    return acts[name](inplace=True)


class StaticSameConv2d(nn.Conv2d):
    """nn.Conv2d with a fixed (left, right, top, bottom) zero pad; state-dict keys of a plain Conv2d."""

    def __init__(self, *args, pad: tuple[int, int, int, int] = (0, 0, 0, 0), **kwargs):
        super().__init__(*args, **kwargs)
        self.static_pad = tuple(int(p) for p in pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.static_pad):
            x = F.pad(x, self.static_pad)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, in_hw: tuple[int, int]) -> "StaticSameConv2d":
        (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
        top, bottom = same_pads(in_hw[0], kh, sh, dh)
        left, right = same_pads(in_hw[1], kw, sw, dw)
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            pad=(left, right, top, bottom),
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        new.weight = conv.weight
        new.bias = conv.bias
        return new


def same_max_pool(kernel: int, stride: int, in_hw: tuple[int, int]) -> nn.Module:
    """Max pool equal to TF 'SAME' max pooling (padding never wins the max) for a known input size."""
    (top, bottom), (left, right) = same_pads(in_hw[0], kernel, stride), same_pads(in_hw[1], kernel, stride)
    if top == bottom and left == right:
        return nn.MaxPool2d(kernel, stride, padding=(top, left))
    # Asymmetric: explicit -inf pad (exported as Pad + MaxPool). ceil_mode would express the same windows,
    # but OpenVINO's shape inference rejects a kernel larger than the unpadded input (2x2 -> 1x1 at P7).
    return _PadMaxPool(kernel, stride, (left, right, top, bottom))


class _PadMaxPool(nn.Module):
    def __init__(self, kernel: int, stride: int, pad: tuple[int, int, int, int]):
        super().__init__()
        self.pad, self.pool = pad, nn.MaxPool2d(kernel, stride)

    def forward(self, x):
        return self.pool(F.pad(x, self.pad, value=float("-inf")))


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=1e-3, momentum=0.01)


class ConvBnAct(nn.Module):
    """conv (+bn) (+act); keys conv.*, bn.* like effdet's ConvBnAct2d."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, bias: bool = False, bn: bool = True, act: str | None = None
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias)
        self.bn = _bn(cout) if bn else None
        self.act = make_act(act) if act else None

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


class SeparableConv(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (+bn) (+act); keys conv_dw.*, conv_pw.*, bn.* like effdet."""

    def __init__(self, cin: int, cout: int, bias: bool = False, bn: bool = True, act: str | None = None):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=bias)
        self.bn = _bn(cout) if bn else None
        self.act = make_act(act) if act else None

    def forward(self, x):
        x = self.conv_pw(self.conv_dw(x))
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


def bn(ch: int) -> nn.BatchNorm2d:
    return _bn(ch)
