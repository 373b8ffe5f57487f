"""The int8 K-major GEMV layout (made at load from the checkpoint layout) and its decode kernel."""

import math

import pytest
import torch

from tests.kernels.numerics import BOUND, rel_error
from vireo.kernels import quant
from vireo.kernels.gemv_kmajor import KMajorGemvConfig
from vireo.kernels.gemv_layout import unpack_kmajor, with_kmajor
from vireo.kernels.qweight import dequantize, quantize_int8

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _poisoned(m, n, dtype):
    return torch.full((m, n), math.nan, dtype=dtype)


def test_int8_layout_holds_the_checkpoint_integers():
    w = quantize_int8(torch.randn(37, 300))
    q = unpack_kmajor(with_kmajor(w).kmajor)
    assert torch.equal(q[:, :300], w.qweight.t())
    assert not q[:, 300:].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k,config",
    [
        (1, 32, 512, KMajorGemvConfig(16, 2, 1)),  # no masks: K a whole number of steps
        (2, 37, 300, KMajorGemvConfig(8, 2, 2)),  # ragged N and K, split over two programs
        (4, 24, 1100, None),  # the dispatcher's own choice
        (1, 16, 2048, KMajorGemvConfig(4, 8, 1, 2)),  # long K, few rows per program
    ],
)
def test_w8a16_kmajor_matches_dequantized_reference(triton_on, dtype, m, n, k, config):
    w = with_kmajor(quantize_int8(torch.randn(n, k)))
    x = torch.randn(m, k).to(dtype)
    out = _poisoned(m, n, dtype)
    quant.w8a16_matmul(x, w, out=out, config=config)
    assert rel_error(out, x.double() @ dequantize(w).double().t()) <= BOUND[dtype]


def test_decode_size_int8_reads_only_the_kmajor_layout(triton_on):
    w = with_kmajor(quantize_int8(torch.randn(24, 300)))
    x = torch.randn(1, 300)
    ref = x.double() @ dequantize(w).double().t()
    w.qweight.zero_()  # at M = 1 the dispatcher must not read the checkpoint layout
    assert rel_error(quant.w8a16_matmul(x, w), ref) <= 1e-5


def test_kmajor_config_without_the_layout_is_refused(triton_on):
    w = quantize_int8(torch.randn(8, 64))
    with pytest.raises(ValueError):
        quant.w8a16_matmul(torch.randn(1, 64), w, config=KMajorGemvConfig(8, 1, 1))
