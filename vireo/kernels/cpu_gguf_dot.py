"""Our CPU kernel over a GGUF file's own quantized blocks (`csrc/cpu_gguf_dot.cpp`): decode-size
matmuls that read exactly the bytes llama.cpp reads (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K; the K-quants
regrouped at load, `regroup`), activations rounded to int8 per block of 32 (per 256 for the K-quants), and each type's
de-quantization to float32. `vireo.kernels.cpu_quant`'s
`CpuGgufWeight` holds the blocks. Its dot products run on AVX-512 VNNI where the CPU has it (`vnni`),
else on AVX2.

Built and loaded by `cpu_extensions` (the engine setting `cpu_kernels` turns it off); where `load_kernel`
returns None, GGUF weights take the int4/int8 forms of `cpu_quant` instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

import torch

from vireo.kernels import cpu_extensions

# GGML's number and (values, bytes) per block of each type the kernel reads
BLOCK_TYPES: dict[str, tuple[int, int, int]] = {
    "Q4_0": (2, 32, 18),
    "Q4_1": (3, 32, 20),
    "Q5_0": (6, 32, 22),
    "Q8_0": (8, 32, 34),
    "Q4_K": (12, 256, 144),
    "Q6_K": (14, 256, 210),
}
# Our layouts of a file's type that the kernel reads faster (`regroup`), made once at load, with our numbers:
# Q4_K with its 6-bit scales unpacked to bytes (148 bytes a block) and Q6_K (same size), their low four bits
# regrouped so that one 64-byte load pairs with 128 contiguous values of x (512-bit registers on VNNI; the
# AVX2 dot products read them too), Q6_K's top two bits four values to a byte.
REGROUPED: dict[str, str] = {"Q4_K": "Q4_K_R", "Q6_K": "Q6_K_R"}
# And the same types with sixteen rows interleaved (N a multiple of 16): a block holds one super-block of sixteen
# rows, four values of each row to 32 bits, so one vpdpbusd multiplies all sixteen rows by the same four values of
# x (the AVX2 bodies read them too); (values, bytes) per row of a block, as the regrouped rows'
INTERLEAVED: dict[str, str] = {
    "Q4_1": "Q4_1_X16",
    "Q5_0": "Q5_0_X16",
    "Q8_0": "Q8_0_X16",
    "Q4_K": "Q4_K_X16",
    "Q6_K": "Q6_K_X16",
}
INTERLEAVED_ROWS = 16
KERNEL_TYPES: dict[str, tuple[int, int, int]] = BLOCK_TYPES | {
    "Q4_K_R": (112, 256, 148),
    "Q6_K_R": (114, 256, 210),
    "Q4_1_X16": (203, 32, 20),
    "Q5_0_X16": (206, 32, 22),
    "Q8_0_X16": (208, 32, 34),
    "Q4_K_X16": (212, 256, 148),
    "Q6_K_X16": (214, 256, 210),
}


def load_kernel() -> ModuleType | None:
    """The compiled extension, or None (`cpu_extensions.load`: turned off, no AVX2, or no compiler)."""
    return cpu_extensions.load("cpu_gguf_dot")


def vnni() -> bool:
    """Whether the dot products run on AVX-512 VNNI here (else AVX2): where they do, Q5_0's and Q4_1's own blocks
    are served whatever their row count (`gguf_weights.blocks_served`)."""
    kernel = load_kernel()
    return kernel is not None and kernel.vnni()


@contextlib.contextmanager
def avx2_only() -> Iterator[None]:
    """The AVX2 dot products within, even where the CPU has VNNI (tests and benchmarks of both)."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    kernel.use_vnni(False)
    try:
        yield
    finally:
        kernel.use_vnni(True)


def gguf_mm(x: torch.Tensor, blocks: torch.Tensor, block_type: str, k: int) -> torch.Tensor:
    """x [M, K] @ W.T -> float32 [M, N]; W: uint8 [N, bytes per row] of `block_type` blocks (a file's type
    or one of our `REGROUPED` layouts)."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    return kernel.gguf_mm(x, blocks, KERNEL_TYPES[block_type][0], k)


def interleaves(rows: int) -> bool:
    """Whether a matrix of `rows` output rows is held sixteen rows interleaved (`INTERLEAVED`) by `regroup`."""
    return rows % INTERLEAVED_ROWS == 0


def regroup(
    blocks: torch.Tensor, block_type: str, k: int, in_place: bool = False, interleave: bool = True
) -> tuple[torch.Tensor, str]:
    """A file's blocks in the layout the kernel reads fastest, and that layout's name: `INTERLEAVED` where the
    rows come in sixteens (`interleaves`, and `interleave`), else `REGROUPED` (`in_place`: written over `blocks`
    where the layout is the same size), or the same blocks where the type has no other layout."""
    interleaved = interleave and interleaves(blocks.shape[0])
    layout = (INTERLEAVED if interleaved else REGROUPED).get(block_type)
    if layout is None:
        return blocks, block_type
    return relayout(blocks, block_type, layout, k, in_place), layout


def relayout(blocks: torch.Tensor, block_type: str, layout: str, k: int, in_place: bool = False) -> torch.Tensor:
    """A file's blocks in one of our layouts of their type (`REGROUPED`'s or `INTERLEAVED`'s)."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    assert blocks.is_contiguous(), "regroup reads contiguous rows of blocks"
    return kernel.gguf_regroup(blocks, BLOCK_TYPES[block_type][0], KERNEL_TYPES[layout][0], k, in_place)


def rows_per_block(block_type: str) -> int:
    """Rows of W one block of the layout holds (a slice of rows starts and ends on a multiple)."""
    return INTERLEAVED_ROWS if block_type in INTERLEAVED.values() else 1


def dequantize(blocks: torch.Tensor, block_type: str, k: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """W as float32 [N, K], or rounded to bfloat16 (`dtype`)."""
    kernel = load_kernel()
    assert kernel is not None, "the AVX2 kernel is not built here"
    assert dtype in (torch.float32, torch.bfloat16), dtype
    return kernel.gguf_dequantize(blocks.contiguous(), KERNEL_TYPES[block_type][0], k, dtype == torch.bfloat16)
