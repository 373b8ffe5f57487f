"""Contiguous-K/V flash prefill (fresh prompts) against explicit float64 causal attention."""

import math

import pytest
import torch

from tests.kernels.numerics import BOUND, rel_error
from tests.kernels.test_attention_kernels import attention_f64
from vireo.inference.native.models.kernel_attention import kernel_meta
from vireo.kernels import attention_ref
from vireo.kernels.flash_prefill import FlashConfig, flash_prefill, pick_flash_config


def packed_case(heads, kv_heads, dim, lens, dtype):
    """Packed q [T, H, D] and k, v [T, KVH, D] as slices of one fused qkv row (strided)."""
    total = sum(lens)
    qkv = torch.randn(total, (heads + 2 * kv_heads) * dim).to(dtype)
    q = qkv[:, : heads * dim].view(total, heads, dim)
    k = qkv[:, heads * dim : (heads + kv_heads) * dim].view(total, kv_heads, dim)
    v = qkv[:, (heads + kv_heads) * dim :].view(total, kv_heads, dim)
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32)
    return q, k, v, cu


def expected(q, k, v, cu, scale):
    b = cu.tolist()
    return torch.cat([attention_f64(q[lo:hi], k[lo:hi], v[lo:hi], scale) for lo, hi in zip(b[:-1], b[1:]) if hi > lo])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "config",
    [
        FlashConfig(32, 16, 4, 2),
        FlashConfig(16, 16, 4, 1),
        FlashConfig(32, 16, 4, 2, tma=True),
        FlashConfig(16, 16, 4, 1, tma=True),
    ],
)
def test_fresh_prompts_varlen_gqa(triton_on, dtype, config):
    # odd lengths: a one-token prompt, a tile-aligned one, one ending mid-tile past 2 blocks
    q, k, v, cu = packed_case(4, 2, 32, [37, 1, 70, 16], dtype)
    out = torch.full_like(q, math.nan)
    flash_prefill(q, k, v, cu, max_len=70, out=out, config=config)
    assert rel_error(out, expected(q, k, v, cu, 1 / math.sqrt(32))) <= BOUND[dtype]


def test_descriptor_variant_declines_what_it_cannot_load(triton_on):
    from vireo.kernels.flash_prefill import tma_supported

    assert tma_supported(*packed_case(4, 2, 32, [5], torch.float16)[:3])
    assert not tma_supported(*packed_case(3, 3, 40, [5], torch.float16)[:3])  # D not a power of 2
    q, k, v, cu = packed_case(3, 3, 40, [50, 19], torch.float32)  # falls back to pointer loads
    out = torch.full_like(q, math.nan)
    flash_prefill(q, k, v, cu, max_len=50, out=out, config=FlashConfig(32, 32, 4, 2, tma=True))
    assert rel_error(out, expected(q, k, v, cu, 1 / math.sqrt(40))) <= BOUND[torch.float32]


def test_padded_head_dim_and_mha(triton_on):
    q, k, v, cu = packed_case(3, 3, 40, [50, 19], torch.float32)  # D 40: masked lanes
    out = torch.full_like(q, math.nan)
    flash_prefill(q, k, v, cu, max_len=50, scale=0.3, out=out, config=FlashConfig(32, 32, 4, 2))
    assert rel_error(out, expected(q, k, v, cu, 0.3)) <= BOUND[torch.float32]


def test_64_bit_offsets_give_the_same_result(triton_on, monkeypatch):
    from vireo.kernels import flash_prefill as module

    q, k, v, cu = packed_case(4, 2, 32, [37, 20], torch.float32)
    monkeypatch.setattr(module, "OFFSET32_LIMIT", 1)  # force the int64 offset path
    out = torch.full_like(q, math.nan)
    flash_prefill(q, k, v, cu, max_len=37, out=out, config=FlashConfig(16, 16, 4, 1))
    assert rel_error(out, expected(q, k, v, cu, 1 / math.sqrt(32))) <= BOUND[torch.float32]


def test_reference_matches_explicit_softmax():
    q, k, v, cu = packed_case(4, 1, 16, [9, 30], torch.float64)
    ref = attention_ref.contiguous_prefill_reference(q, k, v, cu, 0.25)
    assert rel_error(ref, expected(q, k, v, cu, 0.25)) <= 1e-10


def test_config_table_keeps_block_m_a_multiple_of_block_n():
    for length in (1, 16, 17, 64, 65, 4096):
        for dim in (64, 128, 256):
            cfg = pick_flash_config(length, dim, torch.device("cpu"))
            assert cfg.block_m % min(cfg.block_n, cfg.block_m) == 0


def test_kernel_meta_marks_batches_without_prefix_as_fresh():
    assert kernel_meta([5, 3], [5, 3], [[0], [1]], 16, torch.device("cpu")).fresh
    assert not kernel_meta([5, 3], [5, 20], [[0], [1, 2]], 16, torch.device("cpu")).fresh
