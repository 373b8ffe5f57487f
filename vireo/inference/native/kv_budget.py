"""How many KV-cache slots the native engine allocates: a token count, or on CUDA a share of the GPU
memory still free once the weights are loaded (like vLLM's `gpu_memory_utilization`, but of what is left)."""

from __future__ import annotations

import torch

from vireo.inference.engine_config import EngineConfig
from vireo.inference.native.models.llama import ModelShape


def kv_bytes_per_token(shape: ModelShape, dtype: torch.dtype) -> int:
    """K and V of every layer for one token."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * dtype.itemsize


def kv_cache_slots(config: EngineConfig, shape: ModelShape, dtype: torch.dtype, device: torch.device) -> int:
    """`kv_cache_memory_fraction` of free GPU memory on CUDA when set, else `kv_cache_tokens`."""
    if config.kv_cache_memory_fraction is None or device.type != "cuda":
        return config.kv_cache_tokens
    free, _total = torch.cuda.mem_get_info(device)
    slots = int(free * config.kv_cache_memory_fraction) // kv_bytes_per_token(shape, dtype)
    return max(config.block_size, slots)
