"""Paged attention through the Triton kernels (`vireo.kernels.attention`) for the GPU path (the
runner chose it once for the step: the kernels' launchers are called without asking again).

Every query reads its keys and values from the paged cache through its block table, after this
step's K/V were stored there, so prefix-cached blocks are read in place. A batch of one query per
sequence runs flash-decoding; any other batch (prefill chunks, speculative verifications, or a
mix with decodes) runs the varlen flash-prefill kernel, whose queries are the last tokens of each
sequence's context. When no sequence of a prefill batch has a cached prefix (every context is
exactly its query rows), the contiguous flash kernel reads this step's k, v in place instead
(`vireo.kernels.flash_prefill`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vireo.inference.native.worker.transfer import to_device


@dataclass
class KernelAttention:
    """Per-step inputs of the attention kernels (int32 tensors on the cache's device)."""

    block_tables: torch.Tensor  # [seqs, width] physical block ids
    context_lens: torch.Tensor  # [seqs] tokens each sequence sees, this step's included
    max_context: int  # sizes the flash-decoding split (a bound is enough)
    cu_seqlens_q: torch.Tensor | None = None  # [seqs + 1] query row offsets; None: decode
    max_q_len: int = 1
    fresh: bool = False  # every sequence's context is its query rows: attend over k, v directly


def kernel_meta(
    rows_per_seq: list[int], ends: list[int], tables: list[list[int]], block_size: int, device: torch.device
) -> KernelAttention:
    """Metadata for sequences with `rows_per_seq` query rows ending at positions `ends`."""
    width = max(-(-end // block_size) for end in ends)
    padded = [table[:width] + [0] * (width - min(width, len(table))) for table in tables]

    def ints(values) -> torch.Tensor:
        return to_device(values, torch.int32, torch.device(device))

    if max(rows_per_seq) == 1:
        return KernelAttention(ints(padded), ints(ends), max(ends))
    offsets = [0]
    for rows in rows_per_seq:
        offsets.append(offsets[-1] + rows)
    fresh = all(rows == end for rows, end in zip(rows_per_seq, ends))
    return KernelAttention(ints(padded), ints(ends), max(ends), ints(offsets), max(rows_per_seq), fresh)


def kernel_paged_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor | None,
    meta: KernelAttention,
) -> torch.Tensor:
    """Store k, v [tokens, kv_heads, dim] at their slots, attend q [tokens, heads, dim] -> [tokens, heads*dim]."""
    from vireo.kernels.attention import launch_store_kv_cache

    if slot_mapping is not None:
        launch_store_kv_cache(k, v, k_cache, v_cache, slot_mapping)
    return kernel_attend(q, k, v, k_cache, v_cache, meta)


def kernel_attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    meta: KernelAttention,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attend q [tokens, heads, dim] over the cache, this step's k and v already stored there (a fresh prefill
    reads them from k, v) -> [tokens, heads*dim], into `out` ([tokens, heads*dim]) where given."""
    from vireo.kernels.attention import launch_decode_attention, launch_prefill_attention
    from vireo.kernels.flash_prefill import launch_flash_prefill

    out = torch.empty(q.shape, dtype=q.dtype, device=q.device) if out is None else out.view(q.shape)
    if meta.cu_seqlens_q is None:
        launch_decode_attention(q, k_cache, v_cache, meta.block_tables, meta.context_lens, meta.max_context, out=out)
    elif meta.fresh and k.stride(-1) == 1 and v.stride(-1) == 1:
        launch_flash_prefill(q, k, v, meta.cu_seqlens_q, meta.max_q_len, out=out)
    else:
        launch_prefill_attention(
            q,
            k_cache,
            v_cache,
            meta.block_tables,
            meta.cu_seqlens_q,
            meta.context_lens,
            meta.max_q_len,
            out=out,
            block_m=_prefill_block_m(meta.max_q_len, q.device),
        )
    return out.view(q.shape[0], -1)


def _prefill_block_m(max_q_len: int, device: torch.device) -> int:
    """Short query runs (verifications, small chunks) waste less of a 16-row tile than of 128."""
    from vireo.kernels.tuning import kernel_table, pick

    return pick(kernel_table(device)["paged_prefill_block_m"], q_len=max_q_len)
