"""Host lists to device tensors without stalling the host.

A plain `torch.tensor(values, device="cuda")` copies from pageable memory and waits for the
stream; with a decode step in flight (`overlap.py`) that wait would serialize host and GPU
again. On CUDA the values go through pinned memory and the copy is queued on the stream
(`non_blocking`); the caching host allocator keeps the pinned buffer until the copy has run.
"""

from __future__ import annotations

import torch


def to_device(values, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`values` (a list, possibly nested) as a tensor on `device`, queued rather than waited for."""
    if device.type != "cuda":
        return torch.tensor(values, dtype=dtype, device=device)
    return torch.tensor(values, dtype=dtype, pin_memory=True).to(device, non_blocking=True)
