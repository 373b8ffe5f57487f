"""Launching a quantized matmul whose programs may split K: shared by the tensor-core and GEMV paths.

With K split over several programs, each adds its partial sum into a zeroed fp32 buffer with
atomics (on an H200, fp32 partials summed by a second kernel were slower), copied out after.
"""

from __future__ import annotations

from typing import Callable

import torch


def split_k_target(out2: torch.Tensor, split_k: int) -> torch.Tensor:
    """Where a launch writes: the output itself, or a zeroed fp32 buffer the splits add into."""
    if split_k == 1:
        return out2
    return torch.zeros(out2.shape, dtype=torch.float32, device=out2.device)


def launch_split_k(kernel, grid: tuple, out2: torch.Tensor, split_k: int,
                   args_for: Callable[[torch.Tensor], tuple], **meta) -> None:
    """Run kernel[grid](*args_for(target), **meta), then bring a split result into out2."""
    target = split_k_target(out2, split_k)
    kernel[grid](*args_for(target), **meta)
    if target is not out2:
        out2.copy_(target)
