"""Our AVX2 int8-activation x int4-weight CPU kernel against float64 references."""

import pytest
import torch

from vireo.kernels import cpu_int8dot
from vireo.kernels.cpu_int8dot import Int8DotInt4Weight, load_kernel, quantize_activations

SHAPES = [(576, 1536), (896, 4864)]  # (N, K): SmolLM2 / Qwen2.5-0.5B projections


def random_weight(n: int, k: int, seed: int) -> Int8DotInt4Weight:
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=g)
    scale = torch.rand(n, k // 32, generator=g) * 0.02 + 0.001
    zero = (torch.rand(n, k // 32, generator=g) - 0.5) * 0.02
    return Int8DotInt4Weight.from_values(q, scale, zero)


needs_kernel = pytest.mark.skipif(load_kernel() is None, reason="AVX2 extension not available here")


@needs_kernel
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", [1, 2, 4, 8])
def test_matches_dequantized_weight_times_rounded_x(n: int, k: int, m: int) -> None:
    w = random_weight(n, k, seed=m)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(100 + m))
    got = w.matmul(x).double()
    wd = w.dequantize().double()
    # the kernel: q*s terms on the int8-rounded x, the (zero - 8 s) terms on the float x sums
    xr = quantize_activations(x)
    offset = (w.zero.double() - 8 * w.scale.double()).repeat_interleave(32, 1)
    ref = xr @ (wd - offset).t() + x.double() @ offset.t()
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-4 * ref.abs().max().item())


@needs_kernel
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", [1, 8])
def test_close_to_float_activations(n: int, k: int, m: int) -> None:
    # int8 rounding of x moves each value by at most max|x_block|/254, rms about 0.6% of x for
    # Gaussian blocks; the q*s part of y moves by at most |xr - x| times W's largest singular value.
    w = random_weight(n, k, seed=7)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(3))
    got = w.matmul(x).double()
    wd = w.dequantize().double()
    ref = x.double() @ wd.t()
    offset = (w.zero.double() - 8 * w.scale.double()).repeat_interleave(32, 1)
    bound = (quantize_activations(x) - x.double()).norm() * torch.linalg.matrix_norm(wd - offset, ord=2)
    assert (got - ref).norm() <= bound * 1.0001
    assert (got - ref).norm() / ref.norm() < 0.02  # measured about 1.3%: the "~1%" of int8 activations


def test_fallback_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIREO_CPU_INT8DOT", "0")
    cpu_int8dot.load_kernel.cache_clear()
    try:
        assert cpu_int8dot.load_kernel() is None
    finally:
        cpu_int8dot.load_kernel.cache_clear()
