"""The decode (GEMV) layout of a quantized weight: K contiguous per output row, made at load time.

The checkpoint layout (`qweight.py`, K rows of N columns) suits the tensor-core kernels; at M = 1
a kernel wants to stream long contiguous runs of K for a block of output rows instead. Each row's
K is cut into tiles; inside a tile of `words` int32 words, the 32-bit word c holds the inputs
k = f * words + c (field f = byte 0..3 for int8, nibble 0..7 for int4), so the activations that
field f of a run of words multiplies are themselves a contiguous run of x.

- `KMajorInt8`: `words` int32 [N, K_pad / 4], tile = 4 * INT8_TILE_WORDS inputs, bytes signed;
  `scales` float32 [N].
- `MmaInt4` (the small-M tensor-core kernel, `quant_mma.py`): rows in tiles of MMA_ROWS; `words`
  int32 [N_pad / MMA_ROWS, groups, MMA_ROWS, G / 8], so one group of one row tile is one
  contiguous block; word c of a row holds inputs 8c..8c+7 of its group, placed so that one shift
  and one mask give two 16-bit halves that are two consecutive inputs (`MMA_NIBBLE_BIT`);
  `scales` float32 [N_pad / MMA_ROWS, groups, MMA_ROWS] tiled the same way; `zero_scales` float32
  [N_pad, groups]: (16 + zero point) * scale (the kernel's 16-bit magic number plus the zero).
Padding inputs (k >= K) are zero; the kernels mask their activations to zero as well.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from vireo.kernels.qweight import Int4Weight, Int8Weight, unpack_int4

INT8_TILE_WORDS = 64  # 256 inputs per int8 tile: 256 contiguous bytes of one row


@dataclass
class KMajorInt8:
    """int8 weight re-packed for the GEMV: one row of K per output feature, tiles interleaved."""

    words: torch.Tensor
    scales: torch.Tensor
    tile_words: int


@dataclass
class MmaInt4:
    """int4 weight re-packed for the small-M tensor-core kernel: K-major, two inputs per shift."""

    words: torch.Tensor
    scales: torch.Tensor
    zero_scales: torch.Tensor
    group_size: int


MMA_ROWS = 64  # rows per tile of the MMA layout: one warpgroup's MMA height


# Input 8c + j of word c sits at bit MMA_NIBBLE_BIT[j]: nibble i of 16-bit half h holds input
# 8c + 4 (i % 2) + 2 (i // 2) + h, the order in which the kernel's joins lay the halves out.
MMA_NIBBLE_BIT = [0] * 8
for _i in range(4):
    for _h in range(2):
        MMA_NIBBLE_BIT[4 * (_i % 2) + 2 * (_i // 2) + _h] = 16 * _h + 4 * _i


def _interleave_fields(q: torch.Tensor, tile_words: int, fields: int) -> torch.Tensor:
    """q [N, K_pad] small integers -> [N, K_pad / fields] words, field f of word c = input f*W + c.

    Built as little-endian bytes and viewed as int32, so no arithmetic can overflow the sign bit.
    """
    n = q.shape[0]
    tiles = q.view(n, -1, fields, tile_words).transpose(2, 3)  # [N, tiles, W, fields]
    if fields == 8:  # two nibbles per byte: field 2p low, field 2p + 1 high
        tiles = tiles[..., 0::2] | (tiles[..., 1::2] << 4)
    return tiles.contiguous().view(n, -1, 4).view(torch.int32).view(n, -1)


def _pad_columns(q: torch.Tensor, multiple: int) -> torch.Tensor:
    extra = -q.shape[1] % multiple
    return torch.nn.functional.pad(q, (0, extra)) if extra else q


def kmajor_int8(w: Int8Weight) -> KMajorInt8:
    """The GEMV layout of an int8 weight (its checkpoint layout is [K, N])."""
    q = _pad_columns(w.qweight.t().contiguous().view(torch.uint8), 4 * INT8_TILE_WORDS)
    return KMajorInt8(_interleave_fields(q, INT8_TILE_WORDS, 4), w.scales.float().contiguous(), INT8_TILE_WORDS)


def mma_int4(w: Int4Weight) -> MmaInt4:
    """The small-M tensor-core layout of an int4 weight (group size a power of two >= 16)."""
    g = w.group_size
    if g < 16 or g & (g - 1):
        raise ValueError(f"the int4 MMA layout needs a power-of-two group size >= 16, not {g}")
    groups = w.scales.shape[0]
    q = unpack_int4(w.qweight, w.in_features).t()  # [N, K] uint8
    n = q.shape[0]
    n_pad = -(-n // MMA_ROWS) * MMA_ROWS
    q = torch.nn.functional.pad(q, (0, groups * g - q.shape[1], 0, n_pad - n)).to(torch.int64)
    q = q.view(n_pad, -1, 8)
    words = torch.zeros(q.shape[:2], dtype=torch.int64, device=q.device)
    for j, bit in enumerate(MMA_NIBBLE_BIT):
        words |= q[..., j] << bit
    words = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
    scales = torch.nn.functional.pad(w.scales.t().float(), (0, 0, 0, n_pad - n))
    zero_scales = (w.zeros.t().float() + 16.0) * w.scales.t().float()
    return MmaInt4(_row_tiles(words, groups), _row_tiles(scales, groups), zero_scales.contiguous(), g)


def _row_tiles(t: torch.Tensor, groups: int) -> torch.Tensor:
    """[N_pad, groups * c] -> [N_pad / MMA_ROWS, groups, MMA_ROWS, c], contiguous."""
    tiles = t.view(-1, MMA_ROWS, groups, t.shape[1] // groups).transpose(1, 2)
    return tiles.contiguous()


def with_mma(w: Int4Weight) -> Int4Weight:
    """The same int4 weight carrying its tensor-core layout too (small-M kernels use it)."""
    return replace(w, mma=mma_int4(w))


def unpack_mma(layout: MmaInt4) -> torch.Tensor:
    """The unsigned nibbles [N_pad, K_pad] an MMA layout holds; for tests."""
    words = layout.words.transpose(1, 2).flatten(0, 1).flatten(1).to(torch.int64) & 0xFFFFFFFF
    q = torch.stack([(words >> bit) & 0xF for bit in MMA_NIBBLE_BIT], -1)
    return q.flatten(1).to(torch.uint8)


def with_kmajor(w: Int8Weight) -> Int8Weight:
    """The same int8 weight carrying its GEMV layout too (the decode GEMV uses it when present)."""
    return replace(w, kmajor=kmajor_int8(w))


def unpack_kmajor(layout: KMajorInt8) -> torch.Tensor:
    """The signed int8 weight [N, K_pad] a layout holds; for tests."""
    n = layout.words.shape[0]
    raw = layout.words.view(torch.uint8).view(n, -1, layout.tile_words, 4)
    return raw.transpose(2, 3).reshape(n, -1).view(torch.int8)
