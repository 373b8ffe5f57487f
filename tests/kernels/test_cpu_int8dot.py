"""Our AVX2 int8-activation kernels (int4 group-32 and int8 per-channel weights) against float64
references, and the weights that hold them."""

import pytest
import torch

from vireo.kernels import cpu_extensions, cpu_int8dot, cpu_quant
from vireo.kernels.cpu_int8dot import load_kernel, pack_groups, quantize_activations, unpack_groups
from vireo.kernels.cpu_quant import CpuInt4DotWeight, CpuInt8Weight, Int4Grid, pack_int4

SHAPES = [(576, 1536), (896, 4864)]  # (N, K): SmolLM2 / Qwen2.5-0.5B projections
ROWS = [1, 2, 3, 4, 5, 8]  # blocks of four rows of x and the tail one by one


def random_grid(n: int, k: int, seed: int, group: int = 32) -> Int4Grid:
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    scale = torch.rand(n, k // group, generator=g) * 0.02 + 0.001
    minimum = -8 * scale + (torch.rand(n, k // group, generator=g) - 0.5) * 0.02
    return Int4Grid(q, scale, minimum, group)


needs_kernel = pytest.mark.skipif(load_kernel() is None, reason="AVX2 extension not available here")


def test_pack_groups_round_trips():
    q = torch.randint(0, 16, (48, 96), dtype=torch.uint8)
    assert torch.equal(unpack_groups(pack_groups(q)), q)


@needs_kernel
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", ROWS)
def test_int4_matches_the_dequantized_weight_times_rounded_x(n: int, k: int, m: int) -> None:
    grid = random_grid(n, k, seed=m)
    w = CpuInt4DotWeight.from_grid(grid)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(100 + m))
    got = w.matmul(x).double()
    wd = grid.dequantize().double()
    # the kernel: q*s terms on the int8-rounded x, the minimum terms on the float x sums
    xr = quantize_activations(x)
    minimum = grid.minimum.double().repeat_interleave(32, 1)
    ref = xr @ (wd - minimum).t() + x.double() @ minimum.t()
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-4 * ref.abs().max().item())


@needs_kernel
@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("m", [1, 8])
def test_int4_is_close_to_float_activations(n: int, k: int, m: int) -> None:
    # int8 rounding of x moves each value by at most max|x_block|/254, rms about 0.6% of x for
    # Gaussian blocks; the q*s part of y moves by at most |xr - x| times that part's largest singular value.
    grid = random_grid(n, k, seed=7)
    w = CpuInt4DotWeight.from_grid(grid)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(3))
    got = w.matmul(x).double()
    wd = grid.dequantize().double()
    ref = x.double() @ wd.t()
    minimum = grid.minimum.double().repeat_interleave(32, 1)
    bound = (quantize_activations(x) - x.double()).norm() * torch.linalg.matrix_norm(wd - minimum, ord=2)
    assert (got - ref).norm() <= bound * 1.0001
    assert (got - ref).norm() / ref.norm() < 0.02  # measured about 1.3%: the "~1%" of int8 activations


@needs_kernel
def test_a_larger_group_is_regrouped_exactly():
    grid = random_grid(64, 256, seed=1, group=128)
    w = pack_int4(grid)
    assert isinstance(w, CpuInt4DotWeight)
    assert torch.equal(w.dequantize(), grid.dequantize())


@needs_kernel
def test_our_kernel_holds_shapes_pytorchs_cannot():
    w = pack_int4(random_grid(40, 64, seed=5))  # N not a multiple of 16
    assert isinstance(w, CpuInt4DotWeight) and w.shape == (40, 64)


@needs_kernel
@pytest.mark.parametrize("bfloat16", [False, True])
def test_int4_prefill_size_rows_take_the_dequantized_path(bfloat16, monkeypatch):
    """Float32 slices, or (where bfloat16 GEMMs are native) x and slices rounded to bfloat16, the product
    rounded once more."""
    monkeypatch.setattr(cpu_quant, "bfloat16_matmuls_pay", lambda: bfloat16)
    grid = random_grid(64, 256, seed=2)
    w = CpuInt4DotWeight.from_grid(grid)
    x = torch.randn(CpuInt4DotWeight.dense_from_rows, 256)
    if not bfloat16:
        assert torch.allclose(w.matmul(x), x @ grid.dequantize().t(), rtol=1e-4, atol=1e-4)
        return
    ref = x.bfloat16().double() @ grid.dequantize().bfloat16().double().t()
    assert ((w.matmul(x).double() - ref).abs() <= 2**-8 * ref.abs() + 1e-6 * ref.abs().max()).all()


def random_int8(seed: int) -> CpuInt8Weight:
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-127, 128, (576, 1536), generator=g, dtype=torch.int8)
    return CpuInt8Weight(q, (torch.rand(576, generator=g) * 0.01 + 0.001).to(torch.bfloat16))


@needs_kernel
@pytest.mark.parametrize("m", ROWS)
def test_int8_matches_the_weight_times_rounded_x(m: int) -> None:
    w = random_int8(m)
    x = torch.randn(m, 1536, generator=torch.Generator().manual_seed(m))
    got = cpu_int8dot.int8_mm(x, w.qweight, w.scales).double()
    ref = quantize_activations(x) @ w.dequantize().double().t()
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-4 * ref.abs().max().item())


@needs_kernel
def test_an_int8_weight_takes_our_kernel_for_one_row_only() -> None:
    w = random_int8(9)
    one, four = torch.randn(1, 1536), torch.randn(4, 1536)
    assert torch.equal(w.matmul(one), cpu_int8dot.int8_mm(one, w.qweight, w.scales))
    with cpu_extensions.turned_off():
        pytorchs = w.matmul(four)
    assert torch.equal(w.matmul(four), pytorchs)  # four rows: PyTorch's kernel, as with ours turned off


@needs_kernel
def test_bfloat16_activations_come_back_in_their_dtype():
    w = CpuInt4DotWeight.from_grid(random_grid(32, 64, seed=3))
    assert w.matmul(torch.randn(2, 64, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_pytorchs_kernels_when_turned_off() -> None:
    with cpu_extensions.turned_off():
        assert cpu_int8dot.load_kernel() is None
        packed = pack_int4(random_grid(32, 64, seed=4))
        assert not isinstance(packed, CpuInt4DotWeight)  # PyTorch's int4 kernel's form


def test_the_engine_setting_turns_them_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from vireo.platform.settings import Settings

    monkeypatch.setenv("VIREO_CPU_KERNELS", "0")
    assert Settings(_env_file=None).engine.cpu_kernels is False


@needs_kernel
def test_a_lock_left_by_a_killed_build_does_not_stop_the_next_load() -> None:
    """torch's build lock file outlives a process killed while it held it, and torch's waiters wait on it
    forever; our flock around the build lets the next process through (in a subprocess, so a regression
    times out instead of hanging the suite)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    build_dir = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpu_extensions.BUILD_ROOT) / "cpu_int8dot"
    (build_dir / "lock").write_text("")  # as a SIGKILLed loader leaves it
    code = "from vireo.kernels import cpu_extensions; assert cpu_extensions.load('cpu_int8dot') is not None"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=240)
    assert not (build_dir / "lock").exists()
