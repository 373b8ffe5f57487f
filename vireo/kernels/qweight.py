"""Quantized weight containers, int4 packing and round-to-nearest quantization.

Layouts (the kernels read them as they are; docs/quantization.md is the on-disk contract):
- `Int8Weight`: `qweight` int8 [K, N] (in-features rows, out-features contiguous), symmetric,
  one scale per output channel `scales` [N].
- `Int4Weight`: `qweight` int32 [ceil(K/8), N]; nibble j (bits 4j..4j+3) of row i holds input
  channel k = 8i + j, unsigned 0..15. Per group of `group_size` input channels and per output
  channel: `scales` [ceil(K/G), N] and integer zero points `zeros` uint8 [ceil(K/G), N];
  w = (q - zero) * scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

INT4_MAX = 15
INT8_MAX = 127


@dataclass
class Int8Weight:
    """int8 weight [K, N] with per-output-channel scales."""

    qweight: torch.Tensor
    scales: torch.Tensor
    kmajor: Any = None  # gemv_layout.KMajorInt8, made at load for the decode GEMV

    @property
    def shape(self) -> tuple[int, int]:
        """(out_features, in_features), as nn.Linear counts them."""
        return self.qweight.shape[1], self.qweight.shape[0]

    def to(self, device=None, scale_dtype=None) -> "Int8Weight":
        return Int8Weight(self.qweight.to(device), self.scales.to(device, scale_dtype), _layout_to(self.kmajor, device))


@dataclass
class Int4Weight:
    """int4 weight packed eight per int32 along K, grouped scales and zero points."""

    qweight: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    group_size: int
    in_features: int
    mma: Any = None  # gemv_layout.MmaInt4, made at load for the small-M tensor-core kernel

    @property
    def shape(self) -> tuple[int, int]:
        """(out_features, in_features), as nn.Linear counts them."""
        return self.qweight.shape[1], self.in_features

    def to(self, device=None, scale_dtype=None) -> "Int4Weight":
        return Int4Weight(
            self.qweight.to(device),
            self.scales.to(device, scale_dtype),
            self.zeros.to(device),
            self.group_size,
            self.in_features,
            _layout_to(self.mma, device),
        )


def _layout_to(layout, device):
    """A GEMV layout moved to `device` (its float tensors stay float32)."""
    if layout is None:
        return None
    moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(layout).items()}
    return type(layout)(**moved)


def _pad_rows(t: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad dim 0 up to a multiple (K need not divide the group size or 8)."""
    extra = -t.shape[0] % multiple
    return torch.nn.functional.pad(t, (0, 0, 0, extra)) if extra else t


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack unsigned 4-bit values [K, N] (0..15) into int32 [ceil(K/8), N]."""
    q = _pad_rows(q.to(torch.int32), 8).view(-1, 8, q.shape[1])
    packed = torch.zeros(q.shape[0], q.shape[2], dtype=torch.int32, device=q.device)
    for j in range(8):  # the top nibble wraps into the sign bit, as int32 must
        packed |= q[:, j, :] << (4 * j)
    return packed


def unpack_int4(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Unpack int32 [ceil(K/8), N] into unsigned 4-bit values [K, N] (uint8)."""
    shifts = torch.arange(8, dtype=torch.int32, device=packed.device) * 4
    q = (packed.unsqueeze(1) >> shifts.view(1, 8, 1)) & 0xF
    return q.reshape(-1, packed.shape[1])[:k].to(torch.uint8)


def int4_scale_zero(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric min/max scale and integer zero point over the last dim of `w`."""
    wmin = w.amin(dim=-1).clamp(max=0)
    wmax = w.amax(dim=-1).clamp(min=0)
    scale = ((wmax - wmin) / INT4_MAX).clamp(min=1e-8)
    zero = torch.round(-wmin / scale).clamp(0, INT4_MAX)
    return scale, zero


def int4_round(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """Round `w` onto the int4 grid given by broadcastable scale and zero point."""
    return torch.clamp(torch.round(w / scale) + zero, 0, INT4_MAX)


def quantize_int8(weight: torch.Tensor) -> Int8Weight:
    """RTN int8: symmetric, one scale per output row of an nn.Linear weight [N, K]."""
    w = weight.float()
    scale = (w.abs().amax(dim=1) / INT8_MAX).clamp(min=1e-8)
    q = torch.clamp(torch.round(w / scale[:, None]), -INT8_MAX, INT8_MAX).to(torch.int8)
    return Int8Weight(q.t().contiguous(), scale)


def groups_of(weight: torch.Tensor, group_size: int) -> torch.Tensor:
    """View an nn.Linear weight [N, K] as [N, ceil(K/G), G], zero-padding K."""
    n, k = weight.shape
    w = torch.nn.functional.pad(weight.float(), (0, -k % group_size))
    return w.view(n, -1, group_size)


def quantize_int4(weight: torch.Tensor, group_size: int = 128) -> Int4Weight:
    """RTN int4: asymmetric per group of `group_size` input channels of a weight [N, K]."""
    grouped = groups_of(weight, group_size)
    scale, zero = int4_scale_zero(grouped)
    q = int4_round(grouped, scale[..., None], zero[..., None])
    return pack_int4_weight(q.flatten(1)[:, : weight.shape[1]], scale, zero, group_size)


def pack_int4_weight(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, group_size: int) -> Int4Weight:
    """Build an Int4Weight from grid values q [N, K] and per-group scale/zero [N, ceil(K/G)]."""
    k = q.shape[1]
    return Int4Weight(
        pack_int4(q.t()), scale.t().contiguous().float(), zero.t().contiguous().to(torch.uint8), group_size, k
    )


def dequantize(w: Int8Weight | Int4Weight) -> torch.Tensor:
    """The float32 nn.Linear weight [N, K] a quantized weight stands for."""
    if isinstance(w, Int8Weight):
        return (w.qweight.float() * w.scales.float()[None, :]).t()
    k = w.in_features
    q = unpack_int4(w.qweight, k).float()
    group = torch.arange(k, device=q.device) // w.group_size
    return ((q - w.zeros.float()[group]) * w.scales.float()[group]).t()
