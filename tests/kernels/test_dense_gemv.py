"""The dense 16-bit GEMV for decode sizes against x @ W^T in float64."""

import math

import pytest
import torch

from tests.kernels.numerics import BOUND, rel_error
from vireo.kernels.dense_gemv import DenseGemvConfig, dense_gemv

D = DenseGemvConfig


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "m,n,k,config",
    [
        (1, 64, 256, D(8, 64, 4, 1)),  # even: no masks
        (3, 37, 200, D(8, 64, 4, 1)),  # ragged N and K
        (4, 40, 300, D(16, 32, 4, 1)),  # more rows than a program's block
        (2, 24, 128, None),  # the default config (K shorter than one tile)
    ],
)
@pytest.mark.parametrize("with_bias", [False, True])
def test_dense_gemv_matches_float64(triton_on, dtype, m, n, k, config, with_bias):
    w = torch.randn(n, k).to(dtype)
    x = torch.randn(m, k).to(dtype)
    bias = torch.randn(n).to(dtype) if with_bias else None
    out = torch.full((m, n), math.nan, dtype=dtype)
    dense_gemv(x, w, bias, out=out, config=config)
    ref = x.double() @ w.double().t() + (bias.double() if with_bias else 0)
    assert rel_error(out, ref) <= BOUND[dtype]


def test_dense_gemv_refuses_prefill_sizes(triton_on):
    with pytest.raises(ValueError, match="at most 4 rows"):
        dense_gemv(torch.randn(5, 16), torch.randn(8, 16))
