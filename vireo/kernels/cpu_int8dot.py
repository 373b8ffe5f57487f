"""Our AVX2 CPU kernels for decode-size matmuls with int4 (group 32) and int8 (per channel) weights:
activations rounded to int8 per block of 32, integer dot products with the weight's values, float
accumulation (llama.cpp's approach). `vireo.kernels.cpu_quant` holds the weights they read.

Built and loaded by `cpu_extensions` (once per machine; the engine setting `cpu_kernels` turns our
kernels off); where `load_kernel` returns None, callers keep PyTorch's int4/int8 kernels.
"""

from __future__ import annotations

from types import ModuleType

import torch

from vireo.kernels import cpu_extensions

GROUP = 32


def load_kernel() -> ModuleType | None:
    """The compiled extension, or None (`cpu_extensions.load`: turned off, no AVX2, or no compiler)."""
    return cpu_extensions.load("cpu_int8dot")


def int4_mm(x: torch.Tensor, packed: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor) -> torch.Tensor:
    """x [M, K] @ W.T -> float32 [M, N]; W int4 group 32: packed uint8 [N, K/2] (byte j of a group holds
    value j low, value j + 16 high), w = q * scale + minimum with float32 [N, K/32] scale and minimum."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    return kernel.int4_mm(x, packed, scale, minimum)


def int8_mm(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x [M, K] @ W.T -> float32 [M, N]; W int8 [N, K] with one scale per output channel."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    return kernel.int8_mm(x, qweight, scale)


def pack_groups(q: torch.Tensor) -> torch.Tensor:
    """Values 0..15 [N, K] as the kernel reads them: uint8 [N, K/2], in each group of 32 byte j holding
    value j (low nibble) and value j + 16 (high nibble)."""
    n, k = q.shape
    g = q.to(torch.uint8).view(n, k // GROUP, GROUP)
    return (g[..., :16] | (g[..., 16:] << 4)).reshape(n, k // 2).contiguous()


def unpack_groups(packed: torch.Tensor) -> torch.Tensor:
    """`pack_groups` undone: uint8 values 0..15 [N, K]."""
    n, half = packed.shape
    p = packed.view(n, half // 16, 16)
    return torch.cat([p & 0x0F, p >> 4], dim=-1).reshape(n, half * 2)


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """x rounded as the kernel rounds it: int8 per block of 32, scale max|x|/127 (for references)."""
    m, k = x.shape
    b = x.double().view(m, k // GROUP, GROUP)
    s = b.abs().amax(-1, keepdim=True) / 127
    q = torch.where(s > 0, torch.round(b / torch.where(s > 0, s, 1)), 0)
    return (q * s).view(m, k)
