"""Our AVX2 CPU kernel for decode-size int4 matmuls (M = 1..8): activations quantized to int8 per
block of 32, integer dot products with the 4-bit weights, float accumulation (llama.cpp's approach).

Built once per machine with `torch.utils.cpp_extension.load` under $VIREO_HOME/torch_extensions
(or $TORCH_EXTENSIONS_DIR); when the compiler or AVX2 is missing, or VIREO_CPU_INT8DOT=0, `load_kernel`
returns None (logged once) and callers keep PyTorch's int4 kernel.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

GROUP = 32
SOURCE = Path(__file__).parent / "csrc" / "cpu_int8dot.cpp"


@functools.cache
def load_kernel() -> ModuleType | None:
    """The compiled extension, or None (reason logged once)."""
    if os.environ.get("VIREO_CPU_INT8DOT", "1") == "0":
        log.info("cpu int8dot kernel disabled by VIREO_CPU_INT8DOT=0; using torch's int4 kernel")
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        log.info("cpu int8dot kernel needs AVX2 (cpu capability %s); using torch's int4 kernel", capability)
        return None
    build_dir = os.environ.get("TORCH_EXTENSIONS_DIR") or str(
        Path(os.environ.get("VIREO_HOME", Path.home() / ".cache" / "vireo")) / "torch_extensions"
    )
    try:
        from torch.utils.cpp_extension import load

        os.makedirs(build_dir, exist_ok=True)
        return load(
            name="vireo_cpu_int8dot",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-mavx2", "-mfma", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            build_directory=build_dir,
            verbose=False,
        )
    except Exception as exc:  # compiler missing or build failure: fall back, say why once
        log.warning("cpu int8dot kernel could not be built (%s); using torch's int4 kernel", exc)
        return None


@dataclass
class Int8DotInt4Weight:
    """int4 group-32 weight in the kernel's layout: w[n, k] = (q - 8) * scale + zero per (n, group)."""

    packed: torch.Tensor  # uint8 [N, K/2]: in each group byte j holds q[j] (low) and q[j + 16] (high)
    scale: torch.Tensor  # float32 [N, K/32]
    zero: torch.Tensor  # float32 [N, K/32]

    @staticmethod
    def from_values(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> Int8DotInt4Weight:
        """q: integers 0..15 [N, K]; scale, zero [N, K/32] with w = (q - 8) * scale + zero."""
        n, k = q.shape
        assert k % GROUP == 0
        g = q.to(torch.uint8).view(n, k // GROUP, GROUP)
        packed = (g[..., :16] | (g[..., 16:] << 4)).reshape(n, k // 2).contiguous()
        return Int8DotInt4Weight(packed, scale.float().contiguous(), zero.float().contiguous())

    def dequantize(self) -> torch.Tensor:
        n, half = self.packed.shape
        p = self.packed.view(n, half // 16, 16)
        q = torch.cat([p & 0x0F, p >> 4], dim=-1).reshape(n, half * 2).float()
        s = self.scale.repeat_interleave(GROUP, 1)
        z = self.zero.repeat_interleave(GROUP, 1)
        return (q - 8) * s + z

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        kernel = load_kernel()
        assert kernel is not None
        shape = x.shape
        out = kernel.int4_mm(x.reshape(-1, shape[-1]), self.packed, self.scale, self.zero)
        return out.to(x.dtype).view(*shape[:-1], out.shape[-1])


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """x rounded as the kernel rounds it: int8 per block of 32, scale max|x|/127 (for references)."""
    m, k = x.shape
    b = x.double().view(m, k // GROUP, GROUP)
    s = b.abs().amax(-1, keepdim=True) / 127
    q = torch.where(s > 0, torch.round(b / torch.where(s > 0, s, 1)), 0)
    return (q * s).view(m, k)
