"""Launching a quantized matmul whose programs may split K: shared by the tensor-core and GEMV paths.

With K split over several programs, each adds its partial sum into a zeroed fp32 buffer with
atomics (on an H200, fp32 partials summed by a second kernel were slower). For decode sizes
(M <= KEPT_MAX_M) the buffer is kept per shape, device and thread and left zeroed by the one
kernel that copies the result out (`_copy_out_and_clear`): a split launch is then two kernels,
not three (a fill, the matmul, a cast-copy; ~2 us each in a decode step's CUDA graph, 128 of
them per Llama-8B step). Launches that share a kept buffer run one after another on one
stream, as a thread's launches do; larger M gets a fresh zeroed buffer.
"""

from __future__ import annotations

import threading
from typing import Callable

import torch
import triton
import triton.language as tl

KEPT_MAX_M = 16
_KEPT: dict[tuple, torch.Tensor] = {}


def split_k_target(out2: torch.Tensor, split_k: int) -> torch.Tensor:
    """Where a launch writes: the output itself, or a zeroed fp32 buffer the splits add into."""
    if split_k == 1:
        return out2
    if out2.shape[0] > KEPT_MAX_M:
        return torch.zeros(out2.shape, dtype=torch.float32, device=out2.device)
    key = (out2.device, threading.get_ident(), tuple(out2.shape))
    buffer = _KEPT.get(key)
    if buffer is None:  # never freed: a captured CUDA graph may point at it
        buffer = _KEPT[key] = torch.zeros(out2.shape, dtype=torch.float32, device=out2.device)
    return buffer


def launch_split_k(
    kernel, grid: tuple, out2: torch.Tensor, split_k: int, args_for: Callable[[torch.Tensor], tuple], **meta
) -> None:
    """Run kernel[grid](*args_for(target), **meta), then bring a split result into out2."""
    target = split_k_target(out2, split_k)
    kernel[grid](*args_for(target), **meta)
    if target is out2:
        return
    if target.shape[0] > KEPT_MAX_M:
        out2.copy_(target)
    else:
        copy_out_and_clear(target, out2)


def copy_out_and_clear(acc: torch.Tensor, out2: torch.Tensor, block: int = 1024) -> None:
    """out2 = acc (cast to out2's type), and acc = 0, in one pass."""
    m, n = acc.shape
    _copy_out_and_clear[(m, triton.cdiv(n, block))](acc, out2, n, acc.stride(0), out2.stride(0), BLOCK=block)


@triton.jit
def _copy_out_and_clear(acc_ptr, out_ptr, N, stride_am, stride_om, BLOCK: tl.constexpr):
    m = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < N
    acc = tl.load(acc_ptr + m * stride_am + cols, mask=mask)
    tl.store(out_ptr + m * stride_om + cols, acc.to(out_ptr.dtype.element_ty), mask=mask)
    tl.store(acc_ptr + m * stride_am + cols, tl.zeros_like(acc), mask=mask)


@triton.jit
def store_row(out_row, result, cols, N, ATOMIC: tl.constexpr):
    """Write one output row, or with K split, add this split's part to an fp32 row."""
    if ATOMIC:
        tl.atomic_add(out_row + cols, result, mask=cols < N)
    else:
        tl.store(out_row + cols, result.to(out_row.dtype.element_ty), mask=cols < N)
