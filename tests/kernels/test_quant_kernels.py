"""W8A16 / W4A16 Triton matmuls against x @ dequantized(W) in float64."""

import math

import pytest
import torch

from tests.kernels.numerics import BOUND, rel_error
from vireo.kernels import quant
from vireo.kernels.quant_gemv import GemvConfig
from vireo.kernels.qweight import dequantize, quantize_int4, quantize_int8

C = quant.MatmulConfig
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _poisoned(m, n, dtype):
    return torch.full((m, n), math.nan, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k,group,config",
    [
        (1, 72, 200, 32, None),  # K not a multiple of the group or tile
        (24, 40, 136, 64, None),  # past 16 rows: dequantized once, then a matmul
        (5, 33, 264, 64, C(16, 16, 128, 2, 4, 1)),  # split-K with atomics, odd N
        (19, 40, 128, 128, C(16, 32, 128, 1, 4, 1, True)),  # 16-bit dequantization, M past one tile
    ],
)
def test_w4a16_matches_dequantized_reference(triton_on, dtype, m, n, k, group, config):
    w = quantize_int4(torch.randn(n, k), group).to(scale_dtype=torch.float16)
    x = torch.randn(m, k).to(dtype)
    out = _poisoned(m, n, dtype)
    quant.w4a16_matmul(x, w, out=out, config=config)
    ref = x.double() @ dequantize(w).double().t()
    assert rel_error(out, ref) <= BOUND[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k,config",
    [
        (3, 50, 136, None),
        (17, 33, 300, C(16, 16, 128, 3, 4, 1)),
        (18, 20, 96, None),  # past 16 rows: dequantized once, then a matmul
    ],
)
def test_w8a16_matches_dequantized_reference(triton_on, dtype, m, n, k, config):
    w = quantize_int8(torch.randn(n, k))
    x = torch.randn(m, k).to(dtype)
    out = _poisoned(m, n, dtype)
    quant.w8a16_matmul(x, w, out=out, config=config)
    ref = x.double() @ dequantize(w).double().t()
    assert rel_error(out, ref) <= BOUND[dtype]


def test_w4_dequantize_kernel_writes_every_weight(triton_on):
    w = quantize_int4(torch.randn(37, 200), 64)
    out = torch.full((200, 37), math.nan, dtype=torch.float16)
    quant.w4_dequantize(w, torch.float16, out=out)
    assert rel_error(out, dequantize(w).t()) <= 1e-3


def test_batched_input_keeps_leading_dims(triton_on):
    w = quantize_int8(torch.randn(24, 128))
    x = torch.randn(2, 3, 128)
    out = quant.w8a16_matmul(x, w)
    assert out.shape == (2, 3, 24)
    assert rel_error(out, x.double() @ dequantize(w).double().t()) <= 1e-5


def test_cpu_dispatch_uses_reference_without_forcing():
    w = quantize_int4(torch.randn(16, 64), 32)
    x = torch.randn(2, 64)
    assert torch.equal(quant.w4a16_matmul(x, w), quant.w4a16_reference(x, w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k,group,config",
    [
        (1, 72, 256, 128, GemvConfig(32, 16, 1)),
        (3, 40, 200, 64, GemvConfig(16, 8, 2)),  # ragged K, split over two programs
        (4, 36, 264, 32, None),  # the dispatcher's own choice
        (1, 72, 256, 128, GemvConfig(32, 16, 1, high=True)),  # nibbles high in the mantissa
        (2, 40, 200, 64, GemvConfig(16, 8, 2, high=True)),  # ... ragged K, split
    ],
)
def test_w4a16_gemv_for_decode_sizes(triton_on, dtype, m, n, k, group, config):
    w = quantize_int4(torch.randn(n, k), group).to(scale_dtype=torch.float16)
    x = torch.randn(m, k).to(dtype)
    out = _poisoned(m, n, dtype)
    quant.w4a16_matmul(x, w, out=out, config=config)
    assert rel_error(out, x.double() @ dequantize(w).double().t()) <= BOUND[dtype]


def test_split_k_buffer_is_left_zeroed_for_the_next_call(triton_on):
    from vireo.kernels import split_k

    w = quantize_int4(torch.randn(48, 256), 32).to(scale_dtype=torch.float16)
    config = GemvConfig(block_n=16, rows=4, split_k=4, num_warps=4, num_stages=1)
    for _ in range(3):  # each call must start from a zeroed accumulator
        x = torch.randn(2, 256)
        out = _poisoned(2, 48, torch.float32)
        quant.w4a16_matmul(x, w, out=out, config=config)
        assert rel_error(out, x.double() @ dequantize(w).double().t()) <= BOUND[torch.float32]
    kept = [b for key, b in split_k._KEPT.items() if key[2] == (2, 48)]
    assert kept and all(torch.count_nonzero(b) == 0 for b in kept)
