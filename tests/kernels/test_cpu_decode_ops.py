"""Our C++ per-layer CPU operations (csrc/cpu_decode_ops.cpp) against PyTorch's operators, the reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vireo.inference.native.models.layers import apply_rotary
from vireo.kernels import cpu_decode_ops

ops = cpu_decode_ops.for_rows(torch.zeros(1, 8))
pytestmark = pytest.mark.skipif(ops is None, reason="our CPU kernels are not built here (no AVX2 or no compiler)")


@pytest.mark.parametrize("rows, width", [(1, 576), (5, 896), (40, 1536), (3, 100)])
def test_rms_norm_and_its_residual_add(rows, width):
    x, residual, weight = torch.randn(rows, width), torch.randn(rows, width) * 3, torch.rand(width) + 0.5
    expected_residual = residual + x
    expected = F.rms_norm(expected_residual, (width,), weight, 1e-5)
    torch.testing.assert_close(ops.rms_norm(expected_residual, weight, 1e-5), expected, rtol=1e-5, atol=1e-5)
    out = ops.add_rms_norm(x, residual, weight, 1e-5)
    torch.testing.assert_close(residual, expected_residual)  # the add lands in the residual stream
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tokens, heads, width, dim", [(1, 12, 15, 64), (7, 16, 18, 128), (3, 2, 2, 40)])
def test_rope_in_place_on_a_prefix_of_the_heads(tokens, heads, width, dim):
    """The kernel rotates heads [0, heads) of each row of a wider [T, width, D] view (q and k of a qkv
    output), at each token's position, and leaves the rest (v) alone."""
    qkv = torch.randn(tokens, width * dim)
    view = qkv.view(tokens, width, dim)
    positions = torch.randint(0, 500, (tokens,))
    angles = torch.outer(torch.arange(512, dtype=torch.float32), torch.rand(dim // 2))
    cos, sin = angles.cos(), angles.sin()
    expected = apply_rotary(view[:, :heads].clone(), cos[positions].unsqueeze(1), sin[positions].unsqueeze(1))
    untouched = view[:, heads:].clone()
    ops.rope(view[:, :heads], positions, cos, sin, heads)
    torch.testing.assert_close(view[:, :heads], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(view[:, heads:], untouched)
    with pytest.raises(RuntimeError, match="position out of range"):
        ops.rope(view[:, :heads], torch.full((tokens,), 512), cos, sin, heads)


@pytest.mark.parametrize("rows, width", [(1, 1536), (4, 4864), (2, 13)])
def test_silu_and_mul(rows, width):
    gate_up = torch.randn(rows, 2 * width) * 8  # wide enough a range to reach exp's clamps
    gate_up[0, :4] = torch.tensor([-100.0, 100.0, 0.0, -90.0])
    expected = F.silu(gate_up[:, :width]) * gate_up[:, width:]
    torch.testing.assert_close(ops.silu_mul(gate_up), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cache_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("tokens, heads, kv_heads, dim", [(1, 9, 3, 64), (5, 14, 2, 64), (3, 4, 4, 40), (2, 3, 1, 13)])
def test_store_kv_writes_the_views_of_a_qkv_output_to_their_slots(tokens, heads, kv_heads, dim, cache_dtype):
    """Keys and values as the layer passes them (views into one qkv row, not contiguous) land in their
    slots exactly as index_copy_ puts them (a float16 cache: rounded exactly as torch's .to(float16),
    including the values past the last eight of a row); every other slot is left alone."""
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * dim) * 300  # some values round in float16's coarse range
    k = qkv[:, heads * dim : (heads + kv_heads) * dim].view(tokens, kv_heads, dim)
    v = qkv[:, (heads + kv_heads) * dim :].view(tokens, kv_heads, dim)
    k_cache, v_cache = (torch.randn(6, 4, kv_heads, dim).to(cache_dtype) for _ in range(2))
    slots = torch.randperm(24)[:tokens]
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    expected_k.view(-1, kv_heads, dim).index_copy_(0, slots, k.to(cache_dtype))
    expected_v.view(-1, kv_heads, dim).index_copy_(0, slots, v.to(cache_dtype))
    ops.store_kv(k_cache, v_cache, k, v, slots)
    assert torch.equal(k_cache, expected_k) and torch.equal(v_cache, expected_v)


def test_store_kv_refuses_a_slot_outside_the_cache():
    k = torch.randn(1, 2, 8)
    cache = torch.zeros(2, 4, 2, 8)
    with pytest.raises(RuntimeError, match="slot out of range"):
        ops.store_kv(cache, cache.clone(), k, k.clone(), torch.tensor([8]))
    assert not cache.any()
