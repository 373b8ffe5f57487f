"""RMSNorm (+residual), rotary embedding and SiLU-and-mul kernels against float64 math."""

import math

import pytest
import torch

from tests.kernels.numerics import BOUND, rel_error
from vireo.kernels import fused

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _rms_norm_f64(x, w, eps):
    x = x.double()
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.double()


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm(triton_on, dtype):
    x, w = torch.randn(7, 100).to(dtype), torch.randn(100).to(dtype)
    out = torch.full_like(x, math.nan)
    fused.rms_norm(x, w, 1e-6, out=out)
    assert rel_error(out, _rms_norm_f64(x, w, 1e-6)) <= BOUND[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_with_residual_returns_sum_and_its_norm(triton_on, dtype):
    x, r, w = torch.randn(5, 3, 72).to(dtype), torch.randn(5, 3, 72).to(dtype), torch.randn(72).to(dtype)
    out, res_out = torch.full_like(x, math.nan), torch.full_like(x, math.nan)
    fused.rms_norm(x, w, 1e-5, residual=r, out=out, residual_out=res_out)
    summed = x.double() + r.double()
    assert rel_error(res_out, summed) <= BOUND[dtype]
    assert rel_error(out, _rms_norm_f64(summed, w, 1e-5)) <= BOUND[dtype]


def test_rms_norm_residual_in_place(triton_on):
    x, r, w = torch.randn(4, 64), torch.randn(4, 64), torch.randn(64)
    expected = x.double() + r.double()
    fused.rms_norm(x, w, 1e-5, residual=r, residual_out=r)
    assert rel_error(r, expected) <= 1e-6


def _rope_f64(x, positions, theta):
    half = x.shape[-1] // 2
    inv = 1.0 / theta ** (torch.arange(half, dtype=torch.float64) * 2 / x.shape[-1])
    ang = positions.double()[:, None] * inv
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2 = x[..., :half].double(), x[..., half:].double()
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,dim", [(5, 64), (3, 48)])
def test_rope(triton_on, dtype, heads, dim):
    x = torch.randn(9, heads, dim).to(dtype)
    pos = torch.randint(0, 500, (9,))
    out = torch.full_like(x, math.nan)
    fused.apply_rope(x, pos, fused.rope_cos_sin(512, dim, 100000.0), out=out)
    assert rel_error(out, _rope_f64(x, pos, 100000.0)) <= BOUND[dtype]


def test_rope_matches_transformers_llama(triton_on):
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    q, k = torch.randn(1, 4, 6, 64), torch.randn(1, 2, 6, 64)
    pos = torch.arange(10, 16)
    cs = fused.rope_cos_sin(32, 64, 10000.0)
    cos = torch.cat([cs[pos, :32]] * 2, -1)[None]
    sin = torch.cat([cs[pos, 32:]] * 2, -1)[None]
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    q_ours = fused.apply_rope(q[0].transpose(0, 1).contiguous(), pos, cs)
    k_ours = fused.apply_rope(k[0].transpose(0, 1).contiguous(), pos, cs)
    assert rel_error(q_ours, q_ref[0].transpose(0, 1)) <= 1e-5
    assert rel_error(k_ours, k_ref[0].transpose(0, 1)) <= 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_and_mul(triton_on, dtype):
    x = torch.randn(6, 2 * 1100).to(dtype)  # spans two column blocks
    out = torch.full((6, 1100), math.nan, dtype=dtype)
    fused.silu_and_mul(x, out=out)
    g, u = x.double().chunk(2, -1)
    assert rel_error(out, g * torch.sigmoid(g) * u) <= BOUND[dtype]
