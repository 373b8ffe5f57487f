"""Our CPU paged decode-attention kernel against gather + SDPA."""

import pytest
import torch

from vireo.kernels import cpu_attention, cpu_extensions

needs_kernel = pytest.mark.skipif(
    cpu_extensions.load("cpu_paged_attention") is None, reason="the AVX2 extension is not available here"
)


def paged_case(seqs: int, heads: int, kv_heads: int, dim: int, lens: list[int], block_size: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    width = max(-(-n // block_size) for n in lens)
    blocks = seqs * width + 3
    k_cache = torch.randn(blocks, block_size, kv_heads, dim, generator=g)
    v_cache = torch.randn(blocks, block_size, kv_heads, dim, generator=g)
    # each sequence's blocks scattered over the cache, in no order; padding points at block 0
    order = torch.randperm(blocks, generator=g)[: seqs * width].view(seqs, width)
    tables = torch.zeros(seqs, width, dtype=torch.long)
    for s, n in enumerate(lens):
        used = -(-n // block_size)
        tables[s, :used] = order[s, :used]
    q = torch.randn(seqs, heads, dim, generator=g)
    return q, k_cache, v_cache, tables, torch.tensor(lens)


@needs_kernel
@pytest.mark.parametrize(
    "seqs,heads,kv_heads,dim,lens",
    [
        (1, 9, 3, 64, [1]),  # SmolLM2's heads, the first token
        (1, 9, 3, 64, [1000]),  # four chunks of keys, merged
        (2, 9, 3, 64, [256, 257]),  # a chunk edge
        (3, 14, 2, 64, [17, 300, 16]),  # Qwen2.5-0.5B's heads, lengths off and on block edges
        (2, 8, 8, 12, [5, 40]),  # no GQA, a head size that is not a multiple of 8
    ],
)
@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.float16])
def test_matches_gather_and_sdpa(seqs, heads, kv_heads, dim, lens, cache_dtype):
    """A float16 cache is read as it is (each value widened exactly): the same result as SDPA over the
    same float16 values widened to float32."""
    q, k_cache, v_cache, tables, context_lens = paged_case(seqs, heads, kv_heads, dim, lens)
    k_cache, v_cache = k_cache.to(cache_dtype), v_cache.to(cache_dtype)
    got = cpu_attention.decode_attention(q, k_cache, v_cache, tables, context_lens)
    assert got.dtype == torch.float32
    want = cpu_attention.reference(q, k_cache, v_cache, tables, context_lens)
    assert torch.allclose(got, want, atol=2e-5, rtol=1e-4)


@needs_kernel
def test_a_length_past_the_block_table_is_refused():
    q, k, v, tables, _ = paged_case(1, 4, 2, 16, [20])
    with pytest.raises(RuntimeError, match="context length"):
        cpu_attention.decode_attention(q, k, v, tables, torch.tensor([tables.shape[1] * 16 + 1]))


def test_not_available_when_turned_off_or_not_float32():
    q, k, *_ = paged_case(1, 4, 2, 16, [3])
    with cpu_extensions.turned_off():
        assert not cpu_attention.available(q, k)
        assert not cpu_attention.available(q, k.half())
    assert not cpu_attention.available(q.bfloat16(), k.bfloat16())
    assert not cpu_attention.available(q, k.bfloat16())
