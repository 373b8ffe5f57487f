"""Paged prefill / decode attention against explicit float64 softmax attention."""

import math

import pytest
import torch

from tests.kernels.numerics import BOUND, rel_error
from vireo.kernels import attention


def paged_case(heads, kv_heads, dim, block_size, ctxs, q_lens, dtype):
    """A cache with shuffled physical blocks (plus spare ones), tables, packed queries."""
    blocks = [-(-c // block_size) for c in ctxs]
    total = sum(blocks) + 2
    k_cache = torch.randn(total, block_size, kv_heads, dim).to(dtype)
    v_cache = torch.randn(total, block_size, kv_heads, dim).to(dtype)
    perm = torch.randperm(total).to(torch.int32)
    tables = torch.zeros(len(ctxs), max(blocks), dtype=torch.int32)
    used = 0
    for b, n in enumerate(blocks):
        tables[b, :n] = perm[used : used + n]
        used += n
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32)
    q = torch.randn(int(cu[-1]), heads, dim).to(dtype)
    return q, k_cache, v_cache, tables, cu, torch.tensor(ctxs, dtype=torch.int32)


def attention_f64(q, keys, values, scale):
    """Causal softmax attention of q [Lq, H, D] as the last Lq positions of keys [L, KVH, D]."""
    groups = q.shape[1] // keys.shape[1]
    k = keys.double().repeat_interleave(groups, 1)
    v = values.double().repeat_interleave(groups, 1)
    scores = torch.einsum("qhd,khd->hqk", q.double(), k) * scale
    q_pos = torch.arange(keys.shape[0] - q.shape[0], keys.shape[0])
    scores = scores.masked_fill(torch.arange(keys.shape[0])[None, :] > q_pos[:, None], -math.inf)
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def expected(q, k_cache, v_cache, tables, cu, ctxs, scale):
    outs = []
    for b, ctx in enumerate(ctxs.tolist()):
        slots = [int(tables[b, p // k_cache.shape[1]]) * k_cache.shape[1] + p % k_cache.shape[1] for p in range(ctx)]
        keys = k_cache.flatten(0, 1)[slots]
        values = v_cache.flatten(0, 1)[slots]
        outs.append(attention_f64(q[cu[b] : cu[b + 1]], keys, values, scale))
    return torch.cat(outs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("block_size,block_n", [(16, 32), (32, 16)])  # gathered / in-block tiles
def test_prefill_with_cached_prefix_and_gqa(triton_on, dtype, block_size, block_n):
    # sequence 0 has a 33-token cached prefix, 1 is a fresh prompt, 2 is one token after 4
    q, kc, vc, bt, cu, ctx = paged_case(4, 2, 32, block_size, [70, 40, 5], [37, 40, 1], dtype)
    out = torch.full_like(q, math.nan)
    attention.prefill_attention(q, kc, vc, bt, cu, ctx, max_q_len=40, out=out, block_m=16, block_n=block_n)
    ref = expected(q, kc, vc, bt, cu, ctx, 1 / math.sqrt(32))
    assert rel_error(out, ref) <= BOUND[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("splits", [1, 3, 8, None])
def test_decode_split_across_programs(triton_on, dtype, splits):
    # 8 splits: more than the short sequences have key tiles, so some splits stay empty; None:
    # the split count a CUDA graph sized for 4096 positions gets, over these short contexts
    _, kc, vc, bt, _, ctx = paged_case(6, 2, 40, 16, [70, 33, 1], [1, 1, 1], dtype)
    q = torch.randn(3, 6, 40).to(dtype)  # head_dim 40: padded tile, masked lanes
    out = torch.full_like(q, math.nan)
    attention.decode_attention(
        q, kc, vc, bt, ctx, max_context=70 if splits else 4096, out=out, splits=splits, block_n=16
    )
    cu = torch.arange(4, dtype=torch.int32)
    ref = expected(q, kc, vc, bt, cu, ctx, 1 / math.sqrt(40))
    assert rel_error(out, ref) <= BOUND[dtype]


def test_references_agree_with_explicit_softmax():
    q, kc, vc, bt, cu, ctx = paged_case(4, 1, 16, 8, [30, 9], [12, 9], torch.float64)
    ref = attention.prefill_attention_reference(q, kc, vc, bt, cu, ctx, 0.25)
    assert rel_error(ref, expected(q, kc, vc, bt, cu, ctx, 0.25)) <= 1e-10


def test_store_kv_cache_writes_slots_and_skips_padding(triton_on):
    k_cache = torch.full((4, 16, 2, 8), math.nan)
    v_cache = torch.full((4, 16, 2, 8), math.nan)
    k, v = torch.randn(5, 2, 8), torch.randn(5, 2, 8)
    slots = torch.tensor([3, 17, -1, 40, 63])
    attention.store_kv_cache(k, v, k_cache, v_cache, slots)
    flat_k, flat_v = k_cache.view(-1, 2, 8), v_cache.view(-1, 2, 8)
    keep = slots >= 0
    assert torch.equal(flat_k[slots[keep]], k[keep]) and torch.equal(flat_v[slots[keep]], v[keep])
    assert torch.isnan(flat_k).sum() == (64 - 4) * 16
