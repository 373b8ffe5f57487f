"""Reading back the weight that `aten._convert_weight_to_int4pack_for_cpu` packed.

The packer's layout is private to PyTorch and depends on the vector width the CPU kernel was
dispatched with: output channels in blocks of B (32 on AVX2, 64 on AVX-512), each block stored
K-major with B/2 bytes per input channel, byte c holding channel c (low nibble) and c + B/2 (high
nibble); a last partial block, and every block of the scalar build, holds channels 2c and 2c + 1.
Rather than trust a reading of PyTorch's source, the layout in force is found once per process by
packing a probe and checking which candidate reads it back exactly; if none does (a future
PyTorch), `probe_layout` returns None and callers keep to the kernel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

_PROBE_K = 64
_PROBE_N = 112  # a full block of 32 or 64 and a partial one of 16 or 48


@dataclass(frozen=True)
class Int4PackLayout:
    block: int  # output channels per block
    halves: bool  # full blocks hold channels c and c + block/2 in a byte (else 2c and 2c + 1)

    def unpack_t(self, packed: torch.Tensor, k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The values q (0..15) of packed rows [n, K/2] (n a multiple of 16) as W^T [K, n] in `dtype`,
        one pass from nibbles to the (K-major) destination."""
        n = packed.shape[0]
        out = torch.empty(k, n, dtype=dtype)
        full = n // self.block * self.block if self.halves else 0
        if full:
            b = packed[:full].view(full // self.block, k, self.block // 2)
            nibbles = torch.stack([b & 0xF, b >> 4], dim=2)  # [blocks, K, 2, block/2]
            out[:, :full].view(k, full // self.block, 2, self.block // 2).copy_(nibbles.permute(1, 0, 2, 3))
        if n > full:
            t = packed[full:].view(k, (n - full) // 2)  # channel pairs (2c, 2c + 1), K-major
            out[:, full:].view(k, (n - full) // 2, 2).copy_(torch.stack([t & 0xF, t >> 4], dim=-1))
        return out


CANDIDATES = (Int4PackLayout(32, True), Int4PackLayout(64, True), Int4PackLayout(32, False))


@functools.cache
def probe_layout() -> Int4PackLayout | None:
    """The layout this process's packer writes, found by packing a probe; None if no candidate fits."""
    q = torch.randint(0, 16, (_PROBE_N, _PROBE_K), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
    want = q.t().to(torch.uint8)
    for layout in CANDIDATES:
        try:
            if torch.equal(layout.unpack_t(packed, _PROBE_K, torch.uint8), want):
                return layout
        except RuntimeError:  # a shape the candidate's blocks do not fit
            continue
    return None
