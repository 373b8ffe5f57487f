"""PyTorch's CPU int4 / int8 weight-only kernels, as `vireo.kernels.cpu_quant` packs and calls them,
against float references.

The int4 kernel computes w = (q - 8) * scale + zero with bfloat16 activations, scales and zeros,
accumulating in float32; its output is bfloat16. So the reference is x rounded to bfloat16 times
the weight the bfloat16 parameters describe, and the only other error is the output's rounding
(2^-8 relative) plus float32 accumulation order. Our AVX2 kernels, which take these weights' place
where they build, are turned off here (tests/kernels/test_cpu_int8dot.py tests them).
"""

import pytest
import torch

from vireo.kernels import cpu_extensions, cpu_quant
from vireo.kernels.cpu_quant import (
    COMPUTE_DTYPE,
    DENSE_FROM_ROWS,
    CpuInt8Weight,
    Int4Grid,
    for_cpu_kernels,
    int8_from_weight,
    kernel_group_size,
    pack_int4,
    quantize_int8_rows,
)
from vireo.kernels.int4pack_layout import probe_layout
from vireo.kernels.qweight import dequantize, quantize_int4, quantize_int8


@pytest.fixture(autouse=True)
def pytorch_kernels_only():
    with cpu_extensions.turned_off():
        yield


OUTPUT_ROUNDING = 2**-7  # bfloat16 output (2^-8) plus accumulation order, relative to max |y|


def random_grid(n: int, k: int, group: int, seed: int = 0) -> Int4Grid:
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    scale = torch.rand(n, k // group, generator=g) * 0.02 + 1e-3
    minimum = -(torch.rand(n, k // group, generator=g) * 8 + 4) * scale  # Q4_K / Q4_1-like offsets
    return Int4Grid(q, scale, minimum, group)


def kernel_weight(grid: Int4Grid, packed) -> torch.Tensor:
    """The float weight [N, K] the packed form's bfloat16 scales and zeros describe."""
    sz = packed.scales_and_zeros.float()  # [K/G, N, 2]
    group = torch.arange(grid.shape[1]) // packed.group_size
    return (grid.q.float() - 8) * sz[group, :, 0].t() + sz[group, :, 1].t()


def assert_close_to(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.dtype == ref.dtype
    assert (out - ref).abs().max() <= OUTPUT_ROUNDING * ref.abs().max()


@pytest.mark.parametrize("m", [1, 3, 4, 5, 33])
@pytest.mark.parametrize("n,k,group", [(96, 256, 32), (48, 512, 128), (2080, 64, 32)])
def test_int4_kernel_computes_q_minus_8_times_scale_plus_zero(m, n, k, group):
    grid = random_grid(n, k, group)
    packed = pack_int4(grid)  # N = 2080: packed in slices of 1024 output channels, then joined
    x = torch.randn(m, k)
    ref = x.to(COMPUTE_DTYPE).float() @ kernel_weight(grid, packed).t()
    assert_close_to(packed.matmul(x), ref)


def test_the_packed_layout_reads_back_as_the_weight_the_kernel_uses():
    assert probe_layout() is not None  # this PyTorch's packer is one Vireo can read (else: kernel only)
    grid = random_grid(144, 128, 32)  # two full blocks of 64 (or four of 32) and a partial one
    packed = pack_int4(grid)
    assert torch.equal(packed.dequantize(), kernel_weight(grid, packed))


@pytest.mark.parametrize("make", ["int4", "int8"])
def test_prefill_sized_inputs_run_dequantized_slices_that_agree_with_the_kernel(monkeypatch, make):
    grid = random_grid(144, 128, 32, seed=1)
    weight = pack_int4(grid) if make == "int4" else quantize_int8_rows(grid.dequantize())
    reference = weight.dequantize()
    x = torch.randn(DENSE_FROM_ROWS, 128)
    monkeypatch.setattr(cpu_quant, "_DENSE_SLICE", 64 * 128)  # slices of 64 channels: 64, 64, then 16
    monkeypatch.setattr(cpu_quant, "bfloat16_matmuls_pay", lambda: False)  # float32 slices (test_cpu_int8dot: both)
    sliced = weight.matmul(x)
    torch.testing.assert_close(sliced, x @ reference.t(), rtol=1e-5, atol=1e-5)
    kernel = weight.matmul(x[: DENSE_FROM_ROWS - 1])  # one row fewer: the kernel, bfloat16 activations
    assert (kernel - sliced[:-1]).abs().max() <= 0.02 * sliced.abs().max()


def test_int4_scales_and_zeros_round_by_at_most_a_bfloat16_unit():
    grid = random_grid(64, 256, 32)
    packed = pack_int4(grid)
    exact = grid.dequantize()
    q8 = (grid.q.float() - 8).abs()
    scale = grid.scale.repeat_interleave(32, 1)
    zero = (grid.minimum + 8 * grid.scale).repeat_interleave(32, 1)
    bound = 2**-8 * (q8 * scale + zero.abs()) * (1 + 2**-20)
    error = (kernel_weight(grid, packed) - exact).abs()
    assert (error <= bound).all()
    assert error.max() > 0  # bfloat16 scales really are rounded: the bound is the one at work


def test_a_group_of_128_over_576_inputs_runs_regrouped_by_64_exactly():
    weight = quantize_int4(torch.randn(64, 576), 128).to(scale_dtype=torch.float16)  # SmolLM2's K
    assert kernel_group_size(128, 576) == 64
    cpu = for_cpu_kernels(weight)
    assert cpu is not None and cpu.group_size == 64
    grid = Int4Grid.from_int4_weight(weight)
    torch.testing.assert_close(grid.dequantize(), dequantize(weight), rtol=0, atol=1e-6)
    x = torch.randn(4, 576)
    ref = x.to(COMPUTE_DTYPE).float() @ dequantize(weight).t()
    assert (cpu.matmul(x) - ref).abs().max() <= 0.02 * ref.abs().max()  # bfloat16 scales and output


@pytest.mark.parametrize("m", [1, 4, 17])
def test_int8_kernel_matches_the_per_channel_reference(m):
    weight = quantize_int8(torch.randn(80, 192))
    cpu = int8_from_weight(weight)
    x = torch.randn(m, 192)
    ref = x.to(COMPUTE_DTYPE).float() @ cpu.dequantize().t()
    assert_close_to(cpu.matmul(x), ref)
    assert (cpu.dequantize() - dequantize(weight)).abs().max() <= 2**-8 * weight.scales.max() * 127


def test_int8_rows_rounding_is_at_most_half_a_step_and_rows_are_looked_up():
    w = torch.randn(300, 64) * torch.rand(300, 1)
    q = quantize_int8_rows(w, chunk_rows=128)
    step = q.scales.float()[:, None]
    assert ((q.dequantize() - w).abs() <= step / 2 * (1 + 1e-6)).all()
    assert (q.qweight.abs().amax(1) >= 126).all()  # the rounded-up bfloat16 scale still spends the range
    ids = torch.tensor([5, 0, 299, 5])
    torch.testing.assert_close(q.rows(ids, torch.float32), q.dequantize()[ids])


def test_shapes_the_kernels_cannot_hold_are_left_to_the_dense_path():
    assert for_cpu_kernels(quantize_int4(torch.randn(40, 64), 32)) is None  # N not a multiple of 16
    assert for_cpu_kernels(quantize_int4(torch.randn(32, 48), 16)) is None  # no kernel group divides 16
    assert for_cpu_kernels(quantize_int8(torch.randn(32, 100))) is None  # K not a multiple of 32
    assert isinstance(for_cpu_kernels(quantize_int8(torch.randn(33, 64))), CpuInt8Weight)
