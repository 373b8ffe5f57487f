"""The small per-layer operations of a CPU step (RMSNorm with its residual add, RoPE in place, SiLU-and-mul)
as one C++ call each (`csrc/cpu_decode_ops.cpp`, AVX2): PyTorch runs each as several operators, and at
batch 1 their dispatch, not their arithmetic, was ~13 % of a SmolLM2 step. Built and loaded by
`cpu_extensions` (the engine setting `cpu_kernels`); where `for_rows` returns None the model keeps
PyTorch's operators, which are also the reference the tests compare with."""

from __future__ import annotations

from types import ModuleType

import torch

from vireo.kernels import cpu_extensions


def for_rows(x: torch.Tensor) -> ModuleType | None:
    """The extension when `x` is a CPU float32 tensor whose rows it can take, else None."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.stride(-1) != 1:
        return None
    return cpu_extensions.load("cpu_decode_ops")
