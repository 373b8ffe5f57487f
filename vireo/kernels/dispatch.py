"""Choosing between a Triton kernel and its torch reference.

CUDA tensors go to Triton; CPU tensors go to the torch reference, unless Triton is forced (tests
under `TRITON_INTERPRET=1`, where Triton runs CPU tensors in its interpreter).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import Iterator

import torch

_forced = False


def triton_available() -> bool:
    """True when the triton package can be imported."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """True when Triton kernels were built for the interpreter (`TRITON_INTERPRET=1` at import)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def force_triton(enabled: bool = True) -> None:
    """Send every call to Triton, CPU tensors included (they need the interpreter)."""
    global _forced
    _forced = enabled


@contextlib.contextmanager
def triton_forced(enabled: bool = True) -> Iterator[None]:
    """Force Triton (or the reference) inside a `with` block."""
    global _forced
    before, _forced = _forced, enabled
    try:
        yield
    finally:
        _forced = before


def use_triton(x: torch.Tensor) -> bool:
    """Whether a call on tensor `x` should run the Triton kernel."""
    if _forced:
        if not x.is_cuda and not interpreting():
            raise RuntimeError("Triton on CPU tensors needs TRITON_INTERPRET=1 set before import")
        return True
    return x.is_cuda and triton_available()


def dot_dtype(dtype: torch.dtype, device: torch.device):
    """The operand type for `tl.dot`: the activation type, or fp32 for bf16 in the interpreter.

    Triton's interpreter stores bf16 as raw uint16 and gets bf16 arithmetic wrong; only its
    bf16<->fp32 casts are right, so interpreted kernels upcast bf16 operands.
    """
    import triton.language as tl

    table = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32}
    if dtype == torch.bfloat16 and device.type != "cuda":
        return tl.float32
    return table[dtype]
