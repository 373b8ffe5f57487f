"""Weight-only int4 / int8 linears on CPU, on PyTorch's own kernels.

- int4: `aten._weight_int4pack_mm_for_cpu` (the "tinygemm" CPU kernel). The weight is packed once by
  `aten._convert_weight_to_int4pack_for_cpu` from unsigned values q [N, K] (0..15) into a uint8
  layout of its own (which depends on the CPU's vector width, so it is only ever read by the
  kernel); per group of G input channels (G in 32, 64, 128, 256, dividing K) and per output
  channel a scale and an additive zero, `scales_and_zeros` [K/G, N, 2]:
  w[n, k] = (q[n, k] - 8) * scale + zero. N must be a multiple of 16.
- int8: `aten._weight_int8pack_mm`: int8 [N, K], one scale per output channel, w = q * scale.

Both take activations, scales and zeros in one dtype. On AVX2 machines only the bfloat16 variant
is vectorised (float32 runs a scalar loop, about 10x slower), so activations are rounded to
bfloat16 for the matmul, accumulated in float32 inside the kernel, and the output is cast back to
the caller's dtype. The scales are therefore held in bfloat16: the one new rounding of a weight
that arrives as an int4 value times a scale plus an offset (GGUF Q4_0 / Q4_1 / Q4_K, `vireo
quantize` int4) is that of its scale and zero, at most 2^-8 of each relative (bfloat16 keeps 8 significant bits).

`Int4Grid` is the unpacked form every int4 source is first brought into (cheap to concatenate
along N for fused q/k/v and gate/up); `pack_int4` turns it into the `CpuInt4Weight` the kernel
reads.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vireo.kernels import cpu_gguf_dot, cpu_int8dot
from vireo.kernels.int4pack_layout import probe_layout
from vireo.kernels.qweight import Int4Weight, Int8Weight, unpack_int4

KERNEL_GROUP_SIZES = (256, 128, 64, 32)  # what the int4 kernel accepts, largest first
COMPUTE_DTYPE = torch.bfloat16  # the kernels' vectorised activation dtype on AVX2
INT4_OFFSET = 8  # the kernel computes (q - 8) * scale + zero
_PACK_ROWS = 1024  # output channels packed at a time (bounds the int32 copy the packer takes)
# From this many rows of x on, a matmul de-quantizes the weight slice by slice into float32 GEMMs
# instead of calling the kernel (measured on an AVX2 machine: docs/quantization.md, "CPU kernels").
DENSE_FROM_ROWS = 128
_DENSE_SLICE = 1 << 22  # weights de-quantized at a time by that path (16 MB of float32)
# x [M, K] float32 -> x @ W.T float32 [M, N] for decode-size M: a weight's kernel with its operands bound
# (`decode_kernel`), called once per linear per step, so none of `matmul`'s choosing runs each time
DecodeKernel = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Int4Grid:
    """int4 values with per-group affine parameters: w[n, k] = q[n, k] * scale[n, g] + minimum[n, g],
    g = k // group_size. The layout of GGUF's Q4 blocks, not yet packed."""

    q: torch.Tensor  # uint8 [N, K], 0..15
    scale: torch.Tensor  # float32 [N, K/G]
    minimum: torch.Tensor  # float32 [N, K/G]
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.q.shape[0], self.q.shape[1]

    def dequantize(self) -> torch.Tensor:
        """The float32 weight [N, K] (a reference; the engine never makes it)."""
        s = self.scale.repeat_interleave(self.group_size, 1)[:, : self.q.shape[1]]
        m = self.minimum.repeat_interleave(self.group_size, 1)[:, : self.q.shape[1]]
        return self.q.float() * s + m

    def regrouped(self, group: int) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 (scale, minimum) [N, K/group] for a group that divides `group_size`: the same weight,
        each group's parameters repeated over the smaller groups it holds (exact)."""
        repeat, groups = self.group_size // group, self.q.shape[1] // group
        return (
            self.scale.float().repeat_interleave(repeat, 1)[:, :groups],
            self.minimum.float().repeat_interleave(repeat, 1)[:, :groups],
        )

    @staticmethod
    def cat(grids: list[Int4Grid]) -> Int4Grid:
        """One grid whose output channels are those of `grids` in order (same K and group)."""
        if len(grids) == 1:
            return grids[0]
        assert len({g.group_size for g in grids}) == 1, "fused int4 weights share one group size"
        return Int4Grid(
            torch.cat([g.q for g in grids]),
            torch.cat([g.scale for g in grids]),
            torch.cat([g.minimum for g in grids]),
            grids[0].group_size,
        )

    @staticmethod
    def from_int4_weight(w: Int4Weight) -> Int4Grid:
        """A `vireo quantize` / RTN weight (w = (q - z) * s, integer z) as a grid."""
        scale = w.scales.float().t()
        return Int4Grid(unpack_int4(w.qweight, w.in_features).t(), scale, -w.zeros.float().t() * scale, w.group_size)


def kernel_group_size(group_size: int, k: int) -> int | None:
    """The largest group size the int4 kernel takes that divides both K and `group_size` (a weight
    grouped by G is the same weight grouped by any divisor of G, its scales repeated), or None."""
    common = math.gcd(group_size, k)
    return next((g for g in KERNEL_GROUP_SIZES if common % g == 0), None)


def int4_supported(n: int, k: int, group_size: int) -> bool:
    """Whether a CPU int4 kernel (ours or PyTorch's) can hold an [N, K] weight grouped by `group_size`."""
    return (n % 16 == 0 and kernel_group_size(group_size, k) is not None) or int4_dot_supported(k, group_size)


def int8_supported(n: int, k: int) -> bool:
    """Whether the int8 kernel can hold an [N, K] weight (it misreads some K not a multiple of 8)."""
    return n > 0 and k % 32 == 0


@dataclass
class CpuInt4Weight:
    """An int4 weight in the CPU kernel's packed layout."""

    packed: torch.Tensor  # uint8 [N, K/2], the kernel's own layout
    scales_and_zeros: torch.Tensor  # bfloat16 [K/G, N, 2]
    group_size: int
    in_features: int
    dense_from_rows = DENSE_FROM_ROWS

    @property
    def shape(self) -> tuple[int, int]:
        """(out_features, in_features), as nn.Linear counts them."""
        return self.packed.shape[0], self.in_features

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] @ W.T -> [M, N] in x's dtype: the int4 kernel for decode-size M, slices of the
        weight de-quantized into a float32 matmul for prefill-size M (`DENSE_FROM_ROWS`)."""
        if x.shape[0] >= DENSE_FROM_ROWS and probe_layout() is not None:
            return _sliced_matmul(x, self.shape[0], self.in_features, self.dequantized_t)
        xc = x.to(COMPUTE_DTYPE).contiguous()
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(xc, self.packed, self.group_size, self.scales_and_zeros)
        return out.to(x.dtype)

    def decode_kernel(self) -> DecodeKernel | None:
        """None: `matmul` rounds x to bfloat16 for PyTorch's kernel, no direct float32 call."""
        return None

    def dequantized_t(self, start: int, stop: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """W^T [K, stop - start] in float32 (or rounded to `dtype`) for output channels start..stop
        (block-aligned), exactly as the kernel reads it: (q - 8) * scale + zero."""
        layout = probe_layout()
        if layout is None:
            raise RuntimeError("this PyTorch packs int4 weights in a layout Vireo cannot read back")
        k, g = self.in_features, self.group_size
        q = layout.unpack_t(self.packed[start:stop], k).view(k // g, g, stop - start)
        sz = self.scales_and_zeros[:, start:stop].float()
        scale = sz[..., 0].contiguous()  # contiguous: a broadcast operand with strides slows the loop
        offset = sz[..., 1] - INT4_OFFSET * scale
        return q.mul_(scale.unsqueeze(1)).add_(offset.unsqueeze(1)).view(k, stop - start).to(dtype)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight [N, K] (a reference)."""
        return self.dequantized_t(0, self.shape[0]).t()

    def nbytes(self) -> int:
        return self.packed.nbytes + self.scales_and_zeros.nbytes


@dataclass
class CpuInt4DotWeight:
    """An int4 group-32 weight for our AVX2 kernel (`cpu_int8dot`), which rounds activations to int8
    per block of 32 and takes integer dot products: what llama.cpp does for Q4 on AVX2 machines, where
    PyTorch's int4 kernel is compute-bound. w[n, k] = q[n, k] * scale[n, g] + minimum[n, g]."""

    packed: torch.Tensor  # uint8 [N, K/2] (`cpu_int8dot.pack_groups`)
    scale: torch.Tensor  # float32 [N, K/32]
    minimum: torch.Tensor  # float32 [N, K/32]
    group_size = cpu_int8dot.GROUP
    # the kernel's time grows with every row of x (no reuse across rows beyond four); from here on the
    # de-quantized slices are faster (measured on SmolLM2 / Qwen2.5-0.5B shapes: crossover 32-64 rows)
    dense_from_rows = 64

    @property
    def shape(self) -> tuple[int, int]:
        return self.packed.shape[0], self.packed.shape[1] * 2

    @property
    def in_features(self) -> int:
        return self.packed.shape[1] * 2

    @staticmethod
    def from_grid(grid: Int4Grid) -> CpuInt4DotWeight:
        """The grid re-grouped by 32 (exactly: a group of G is G/32 groups of 32 with its scale repeated)."""
        scale, minimum = grid.regrouped(cpu_int8dot.GROUP)
        return CpuInt4DotWeight(cpu_int8dot.pack_groups(grid.q), scale.contiguous(), minimum.contiguous())

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] @ W.T -> [M, N] in x's dtype: the AVX2 kernel for decode-size M, de-quantized slices in
        float32 matmuls for prefill-size M (`dense_from_rows`)."""
        n, k = self.shape
        if x.shape[0] >= self.dense_from_rows:
            return _sliced_matmul(x, n, k, self.dequantized_t)
        return cpu_int8dot.int4_mm(x, self.packed, self.scale, self.minimum).to(x.dtype)

    def decode_kernel(self) -> DecodeKernel | None:
        """`matmul` for float32 x of fewer than `dense_from_rows` rows, the kernel and its operands bound once."""
        kernel = cpu_int8dot.load_kernel()
        if kernel is None:
            return None
        mm, packed, scale, minimum = kernel.int4_mm, self.packed, self.scale, self.minimum
        return lambda x: mm(x, packed, scale, minimum)

    def dequantized_t(self, start: int, stop: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """W^T [K, stop - start] in float32 (or rounded to `dtype`) for output channels start..stop."""
        q = cpu_int8dot.unpack_groups(self.packed[start:stop]).float()
        g = cpu_int8dot.GROUP
        w = q.view(stop - start, -1, g).mul_(self.scale[start:stop, :, None]).add_(self.minimum[start:stop, :, None])
        return w.view(stop - start, -1).t().to(dtype)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight [N, K] (a reference)."""
        return self.dequantized_t(0, self.shape[0]).t()

    def nbytes(self) -> int:
        return self.packed.nbytes + self.scale.nbytes + self.minimum.nbytes


def int4_dot_supported(k: int, group_size: int) -> bool:
    """Whether our AVX2 kernel is built here and can hold a weight of K inputs grouped by `group_size`."""
    g = cpu_int8dot.GROUP
    return k % g == 0 and group_size % g == 0 and cpu_int8dot.load_kernel() is not None


@dataclass
class CpuInt8Weight:
    """An int8 weight [N, K] with one scale per output channel, for the CPU int8 kernel."""

    qweight: torch.Tensor  # int8 [N, K]
    scales: torch.Tensor  # bfloat16 [N]
    dense_from_rows = DENSE_FROM_ROWS

    @property
    def shape(self) -> tuple[int, int]:
        return self.qweight.shape[0], self.qweight.shape[1]

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] @ W.T -> [M, N] in x's dtype (prefill-size M: de-quantized slices, as int4)."""
        if x.shape[0] >= self.dense_from_rows:
            return _sliced_matmul(x, self.shape[0], self.shape[1], self.dequantized_t)
        if x.shape[0] == 1 and self.shape[1] % cpu_int8dot.GROUP == 0 and cpu_int8dot.load_kernel() is not None:
            # one row (one stream decoding): our AVX2 kernel; measured in the engine (SmolLM2's int8 LM head)
            # 1.13x PyTorch's kernel at one stream, 0.95x at four, so more rows stay on PyTorch's
            return cpu_int8dot.int8_mm(x, self.qweight, self.scales).to(x.dtype)
        out = torch.ops.aten._weight_int8pack_mm(x.to(COMPUTE_DTYPE).contiguous(), self.qweight, self.scales)
        return out.to(x.dtype)

    def decode_kernel(self) -> DecodeKernel | None:
        """None: `matmul` picks a kernel by the rows of x."""
        return None

    def dequantized_t(self, start: int, stop: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """W^T [K, stop - start] in float32 (or rounded to `dtype`) for output channels start..stop."""
        return (self.qweight[start:stop].float() * self.scales[start:stop].float()[:, None]).t().to(dtype)

    def rows(self, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Rows `index` of W (an embedding lookup on a tied embedding matrix), in `dtype`."""
        return self.qweight[index].to(dtype) * self.scales[index].to(dtype).unsqueeze(-1)

    def dequantize(self) -> torch.Tensor:
        return self.qweight.float() * self.scales.float()[:, None]

    def nbytes(self) -> int:
        return self.qweight.nbytes + self.scales.nbytes

    @staticmethod
    def cat(weights: list[CpuInt8Weight]) -> CpuInt8Weight:
        if len(weights) == 1:
            return weights[0]
        return CpuInt8Weight(torch.cat([w.qweight for w in weights]), torch.cat([w.scales for w in weights]))


@dataclass
class CpuGgufWeight:
    """A weight in a GGUF file's own quantized blocks (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K), read by our AVX2
    kernel (`cpu_gguf_dot`): the bytes llama.cpp reads, nothing re-rounded."""

    blocks: torch.Tensor  # uint8 [N, bytes per row]
    block_type: str  # "Q4_K", ..., or one of our layouts, "Q4_K_X16", ... (`cpu_gguf_dot.KERNEL_TYPES`)
    in_features: int

    @property
    def dense_from_rows(self) -> int:
        """Rows of x from which de-quantized slices in bfloat16 / float32 GEMMs beat the kernel: 64 for the
        file's layouts and the regrouped rows, whose kernel's time grows fast with every row of x; never for
        the interleaved layouts, whose kernel multiplies 256 rows of x 1.4-2.0x faster than de-quantized
        slices in bfloat16 on the large matrices (Zen 4, gguf-kernels-epyc-zen4-interleaved.json; on AVX2
        alone 0.97-2.0x a float32 GEMM)."""
        return sys.maxsize if cpu_gguf_dot.rows_per_block(self.block_type) > 1 else 64

    @classmethod
    def from_file(cls, blocks: torch.Tensor, block_type: str, k: int, in_place: bool = False) -> CpuGgufWeight:
        """A weight of a file's blocks that matmuls read: in our layout where the kernel has a faster one
        for the type (`cpu_gguf_dot.regroup`; `in_place`: `blocks` may be written over; rows that only
        lookups read keep the file's layout). Not interleaved where AMX multiplies bfloat16 (Intel Sapphire
        Rapids and later): there de-quantized slices in AMX GEMMs may still win the prefill, and the
        interleaved layouts de-quantize slowly; not measured, so those CPUs keep the layouts measured before."""
        return cls(*cpu_gguf_dot.regroup(blocks, block_type, k, in_place, interleave=not amx_bfloat16()), k)

    @property
    def shape(self) -> tuple[int, int]:
        return self.blocks.shape[0], self.in_features

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """x [M, K] @ W.T -> [M, N] in x's dtype (prefill-size M: de-quantized slices)."""
        n, k = self.shape
        if x.shape[0] >= self.dense_from_rows:
            return _sliced_matmul(x, n, k, self.dequantized_t)
        return cpu_gguf_dot.gguf_mm(x, self.blocks, self.block_type, k).to(x.dtype)

    def decode_kernel(self) -> DecodeKernel | None:
        """`matmul` for float32 x of fewer than `dense_from_rows` rows, the kernel and its operands bound once."""
        kernel = cpu_gguf_dot.load_kernel()
        if kernel is None:
            return None
        mm, blocks, k = kernel.gguf_mm, self.blocks, self.in_features
        type_number = cpu_gguf_dot.KERNEL_TYPES[self.block_type][0]
        return lambda x: mm(x, blocks, type_number, k)

    def dequantized_t(self, start: int, stop: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """W^T [K, stop - start] in float32 (or rounded to bfloat16) for output channels start..stop."""
        return cpu_gguf_dot.dequantize(self.blocks[start:stop], self.block_type, self.in_features, dtype).t()

    def rows(self, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Rows `index` of W (an embedding lookup), in `dtype`; an interleaved layout's whole groups of rows
        are de-quantized and the rows picked from them."""
        flat = index.reshape(-1)
        per_block = cpu_gguf_dot.rows_per_block(self.block_type)
        if per_block == 1:
            picked = self.blocks.index_select(0, flat)
            rows = cpu_gguf_dot.dequantize(picked, self.block_type, self.in_features)
        else:
            groups, offset = flat.div(per_block, rounding_mode="floor"), flat.remainder(per_block)
            row_bytes = self.blocks.shape[1]
            group_rows = self.blocks.view(-1, per_block * row_bytes).index_select(0, groups).view(-1, row_bytes)
            whole = cpu_gguf_dot.dequantize(group_rows, self.block_type, self.in_features)
            rows = whole.view(-1, per_block, self.in_features)[torch.arange(len(flat)), offset]
        return rows.view(*index.shape, self.in_features).to(dtype)

    def dequantize(self) -> torch.Tensor:
        """The float32 weight [N, K] (a reference)."""
        return cpu_gguf_dot.dequantize(self.blocks, self.block_type, self.in_features)

    def nbytes(self) -> int:
        return self.blocks.nbytes

    @staticmethod
    def cat(weights: list[CpuGgufWeight]) -> CpuGgufWeight:
        """One weight whose output channels are those of `weights` in order (same type and K)."""
        if len(weights) == 1:
            return weights[0]
        first = weights[0]
        assert all(w.block_type == first.block_type and w.in_features == first.in_features for w in weights)
        return CpuGgufWeight(torch.cat([w.blocks for w in weights]), first.block_type, first.in_features)


def gguf_blocks_supported(block_type: str, k: int) -> bool:
    """Whether our AVX2 kernel is built here and reads rows of K values of `block_type` blocks."""
    spec = cpu_gguf_dot.BLOCK_TYPES.get(block_type)
    return spec is not None and k % spec[1] == 0 and cpu_gguf_dot.load_kernel() is not None


CpuWeight = CpuInt4Weight | CpuInt4DotWeight | CpuInt8Weight | CpuGgufWeight


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo; elsewhere none)."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return frozenset()


def amx_bfloat16() -> bool:
    """Whether this CPU has AMX's bfloat16 tiles (Intel Sapphire Rapids and later)."""
    return "amx_bf16" in cpu_flags()


@functools.cache
def bfloat16_matmuls_pay() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512_BF16 or AMX): there a bfloat16 GEMM
    runs ~2.4x a float32 one (AMD EPYC Zen 4, [256, 1536] x [1536, 8960]: 18.6 vs 52.4 ms), more than
    its conversions cost; elsewhere oneDNN emulates it. Linux's CPU flags; elsewhere False."""
    flags = cpu_flags()
    return torch.backends.mkldnn.is_available() and ("avx512_bf16" in flags or "amx_bf16" in flags)


def _sliced_matmul(x: torch.Tensor, n: int, k: int, dequantized_t) -> torch.Tensor:
    """x @ W.T with W de-quantized `_DENSE_SLICE` weights at a time (never a float copy of all of
    it), each slice a float32 matmul: at prefill sizes this beats the int4/int8 kernels, which
    de-quantize their tile again for every 4 rows of x. Where bfloat16 GEMMs are native
    (`bfloat16_matmuls_pay`), x and each slice are rounded to bfloat16 first (the prefill's activations
    then carry 8 significant bits, as llama.cpp's int8 blocks carry about as many)."""
    rows = max(64, _DENSE_SLICE // k // 64 * 64)  # a multiple of the packer's blocks
    dtype = torch.bfloat16 if bfloat16_matmuls_pay() else torch.float32
    xs = x.to(dtype)
    parts = [torch.mm(xs, dequantized_t(start, min(start + rows, n), dtype)) for start in range(0, n, rows)]
    out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    return out.to(x.dtype)


def pack_int4(grid: Int4Grid) -> CpuInt4Weight | CpuInt4DotWeight:
    """A grid in the form of the fastest CPU kernel here that holds it: our AVX2 kernel's
    (`CpuInt4DotWeight`), else PyTorch's int4 kernel's, re-grouped to a size that kernel takes (exactly:
    scales repeated), packed `_PACK_ROWS` output channels at a time (the packer wants int32 values)."""
    n, k = grid.shape
    if int4_dot_supported(k, grid.group_size):
        return CpuInt4DotWeight.from_grid(grid)
    group = kernel_group_size(grid.group_size, k)
    if group is None or n % 16:
        raise ValueError(f"the CPU int4 kernel cannot hold a [{n}, {k}] weight grouped by {grid.group_size}")
    scale, minimum = grid.regrouped(group)
    zero = minimum + INT4_OFFSET * scale
    scales_and_zeros = torch.stack([scale.t(), zero.t()], dim=-1).to(COMPUTE_DTYPE).contiguous()
    # Blocks of output channels are packed independently, so packing in slices of a multiple of
    # the block (32 or 64 channels) and concatenating gives the same layout.
    parts = [
        torch.ops.aten._convert_weight_to_int4pack_for_cpu(grid.q[start : start + _PACK_ROWS].to(torch.int32), 1)
        for start in range(0, n, _PACK_ROWS)
    ]
    packed = torch.cat(parts) if len(parts) > 1 else parts[0]
    return CpuInt4Weight(packed, scales_and_zeros, group, k)


def int8_from_weight(w: Int8Weight) -> CpuInt8Weight:
    """A `vireo quantize` / RTN int8 weight (int8 [K, N]) in the kernel's [N, K] layout."""
    return CpuInt8Weight(w.qweight.t().contiguous(), w.scales.to(COMPUTE_DTYPE))


def quantize_int8_rows(weight: torch.Tensor, chunk_rows: int = 4096) -> CpuInt8Weight:
    """Round a float weight [N, K] to int8, one symmetric scale per output row (RTN), `chunk_rows`
    rows at a time so that no float copy of the whole matrix is made."""
    n, k = weight.shape
    q = torch.empty(n, k, dtype=torch.int8)
    scales = torch.empty(n, dtype=COMPUTE_DTYPE)
    for start in range(0, n, chunk_rows):
        rows = weight[start : start + chunk_rows].float()
        # the scale the kernel will use (bfloat16), rounded up so that the row's largest value fits
        scale = (rows.abs().amax(dim=1) / 127 * (1 + 2**-7)).clamp(min=1e-30).to(COMPUTE_DTYPE)
        q[start : start + chunk_rows] = torch.round(rows / scale.float()[:, None]).clamp_(-127, 127).to(torch.int8)
        scales[start : start + chunk_rows] = scale
    return CpuInt8Weight(q, scales)


def for_cpu_kernels(w: Int4Weight | Int8Weight) -> CpuWeight | None:
    """A portable quantized weight in the CPU kernels' form, or None where they cannot hold it."""
    n, k = w.shape
    if isinstance(w, Int8Weight):
        return int8_from_weight(w) if int8_supported(n, k) else None
    if not int4_supported(n, k, w.group_size):
        return None
    return pack_int4(Int4Grid.from_int4_weight(w))
