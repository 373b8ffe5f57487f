"""Our kernel over GGUF's own blocks (`cpu_gguf_dot`): each type's de-quantization equals gguf's
(`gguf.quants.dequantize`, the format's reference code) exactly, and its matmul equals, in float64, the
de-quantized weight times x rounded as the kernel rounds it (per 32 values; per 256 for the K-quants),
with its AVX2 dot products and with its AVX-512 VNNI ones (those only where the CPU has VNNI). Our layouts
of a file's K-quant blocks, made at load (Q4_K_R, Q6_K_R: regrouped rows; Q4_K_X16, Q6_K_X16: sixteen rows
interleaved), are held to the file type's reference the same way."""

import os
import sys

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from vireo.inference.quant.linear import QuantizedLinear
from vireo.kernels import cpu_gguf_dot, cpu_quant
from vireo.kernels.cpu_quant import CpuGgufWeight

pytestmark = pytest.mark.skipif(cpu_gguf_dot.load_kernel() is None, reason="AVX2 extension not available here")

TYPES = list(cpu_gguf_dot.BLOCK_TYPES)
# each file type as the kernel reads it in the file's layout, and the types it lays out in ours ("Q4_K_R", ...)
FILE_TYPE = {
    layout: file_type
    for ours in (cpu_gguf_dot.REGROUPED, cpu_gguf_dot.INTERLEAVED)
    for file_type, layout in ours.items()
}
LAYOUTS = TYPES + list(FILE_TYPE)
# blocks of eight and four rows of x and the tail one by one; 40: x rounded on two threads
ROWS = [1, 3, 4, 5, 8, 12, 40]
N, K = 80, 768  # N: five groups of sixteen rows; K: three super-blocks of 256


@pytest.fixture(params=["avx2", "vnni"])
def isa(request):
    """The kernel's dot products on each instruction set it has (VNNI only where this CPU has it)."""
    if request.param == "avx2":
        with cpu_gguf_dot.avx2_only():
            yield "avx2"
    elif cpu_gguf_dot.vnni():
        yield "vnni"
    else:
        pytest.skip("this CPU has no AVX-512 VNNI: the AVX2 run is the check here")


def random_blocks(block_type: str, n: int = N, k: int = K, seed: int = 0, every_bit_set: bool = False) -> np.ndarray:
    """Rows [n, bytes] of random blocks (every bit pattern of the values) with sane float16 scales; with
    `every_bit_set`, every value and sub-scale at its largest bit pattern instead."""
    rng = np.random.default_rng(seed)
    _, values, size = cpu_gguf_dot.BLOCK_TYPES[block_type]
    raw = rng.integers(0, 256, (n, k // values, size), dtype=np.uint8)
    if every_bit_set:
        raw[:] = 0xFF
    halves = rng.uniform(1e-3, 2e-2, (n, k // values, 2)).astype(np.float16).view(np.uint8)
    if block_type == "Q6_K":
        raw[..., 208:210] = halves[..., :2]  # d follows ql, qh and the int8 sub-scales
    elif block_type in ("Q4_1", "Q4_K"):
        raw[..., 0:4] = halves  # d and m (Q4_1) or dmin (Q4_K)
    else:
        raw[..., 0:2] = halves[..., :2]
    return raw.reshape(n, -1)


def weight_of(layout: str, seed: int) -> tuple[CpuGgufWeight, np.ndarray]:
    """A weight in `layout` (a file type as is, or laid out in ours from its file type), and the file's blocks."""
    raw = random_blocks(FILE_TYPE.get(layout, layout), seed=seed)
    if layout in FILE_TYPE:
        blocks = cpu_gguf_dot.relayout(torch.from_numpy(raw), FILE_TYPE[layout], layout, K)
        _, values, size = cpu_gguf_dot.KERNEL_TYPES[layout]
        assert blocks.shape == (N, K // values * size)
        return CpuGgufWeight(blocks, layout, K), raw
    return CpuGgufWeight(torch.from_numpy(raw), layout, K), raw


def reference_weight(raw: np.ndarray, block_type: str) -> torch.Tensor:
    return torch.from_numpy(np.array(dequantize(raw, GGMLQuantizationType[block_type]), dtype=np.float32))


def rounded(x: torch.Tensor, block: int) -> torch.Tensor:
    """x as the kernel rounds it: int8 per `block` values, scale max|x| / 127 (float64)."""
    m, k = x.shape
    b = x.double().view(m, k // block, block)
    scale = b.abs().amax(-1, keepdim=True).float().double() / 127
    q = torch.where(scale > 0, torch.round(b / torch.where(scale > 0, scale, 1)), 0)
    return (q * scale).view(m, k)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dequantization_equals_gguf_reference_code(layout):
    weight, raw = weight_of(layout, seed=0)
    ours = cpu_gguf_dot.dequantize(weight.blocks, layout, K)
    assert torch.equal(ours, reference_weight(raw, FILE_TYPE.get(layout, layout)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("m", ROWS)
def test_matmul_equals_the_weight_times_rounded_x(layout, m, isa):
    weight, raw = weight_of(layout, seed=m)
    x = torch.randn(m, K, generator=torch.Generator().manual_seed(100 + m))
    got = weight.matmul(x).double()
    file_type = FILE_TYPE.get(layout, layout)
    block = 256 if file_type.endswith("_K") else 32
    ref = rounded(x, block) @ reference_weight(raw, file_type).double().t()
    # float32 accumulation of integer block products: relative to the output's scale
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
    # and not merely close to zero: x's rounding is what the reference models, not a looser bound
    assert ref.abs().max() > 0.1


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("sign", [1, -1])
def test_matmul_is_exact_where_every_product_is_largest(layout, sign, isa):
    """Every weight byte at its largest (Q4: 15, Q5_0: 31, Q6_K: 63 before their offsets; the largest sub-scales)
    against x of one magnitude (every value rounds to +-127): the AVX2 bodies add products in int16 before they
    scale them (`partial_dot4`), which holds only while such sums stay within int16."""
    file_type = FILE_TYPE.get(layout, layout)
    raw = random_blocks(file_type, seed=7, every_bit_set=True)
    if layout in FILE_TYPE:
        weight = CpuGgufWeight(cpu_gguf_dot.relayout(torch.from_numpy(raw), file_type, layout, K), layout, K)
    else:
        weight = CpuGgufWeight(torch.from_numpy(raw), layout, K)
    x = torch.full((4, K), 0.5 * sign)
    got = weight.matmul(x).double()
    ref = x.double() @ reference_weight(raw, file_type).double().t()
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert ref.abs().max() > 0.1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dequantization_to_bfloat16_rounds_the_reference_to_nearest(layout):
    weight, raw = weight_of(layout, seed=11)
    ours = cpu_gguf_dot.dequantize(weight.blocks, layout, K, torch.bfloat16)
    assert ours.dtype == torch.bfloat16 and torch.equal(
        ours, reference_weight(raw, FILE_TYPE.get(layout, layout)).bfloat16()
    )


@pytest.mark.parametrize("file_type", list(cpu_gguf_dot.INTERLEAVED))
def test_layouts_of_ours_keep_the_files_rows_in_order(file_type, monkeypatch):
    """Rows in sixteens are interleaved; others are regrouped row by row (the K-quants) or keep the file's
    bytes; either way a weight's rows are the file's rows (its output channels neither move nor mix), so
    fused projections and slices stay right. Q4_0 has no layout of ours."""
    monkeypatch.setattr(cpu_quant, "amx_bfloat16", lambda: False)  # interleaved wherever AMX does not decide
    raw = torch.from_numpy(random_blocks("Q4_0"))
    assert cpu_gguf_dot.regroup(raw, "Q4_0", K) == (raw, "Q4_0")
    with pytest.raises(RuntimeError, match="no layout"):
        cpu_gguf_dot.load_kernel().gguf_regroup(raw, cpu_gguf_dot.BLOCK_TYPES["Q4_0"][0], 212, K)
    blocks = random_blocks(file_type, seed=5)
    whole = CpuGgufWeight.from_file(torch.from_numpy(blocks), file_type, K)
    assert whole.block_type == cpu_gguf_dot.INTERLEAVED[file_type]
    part = CpuGgufWeight.from_file(torch.from_numpy(blocks[16:48].copy()), file_type, K)
    assert torch.equal(whole.blocks[16:48], part.blocks)
    assert not torch.equal(part.blocks, torch.from_numpy(blocks[16:48]))
    odd = CpuGgufWeight.from_file(torch.from_numpy(blocks[10:20].copy()), file_type, K)  # ten rows: not interleaved
    assert odd.block_type == cpu_gguf_dot.REGROUPED.get(file_type, file_type)
    assert torch.equal(odd.dequantize(), reference_weight(blocks[10:20], file_type))
    in_place = torch.from_numpy(blocks.copy())
    again = CpuGgufWeight.from_file(in_place, file_type, K, in_place=True)
    assert torch.equal(again.blocks, whole.blocks)
    same_size = cpu_gguf_dot.KERNEL_TYPES[whole.block_type][2] == cpu_gguf_dot.BLOCK_TYPES[file_type][2]
    assert (again.blocks.data_ptr() == in_place.data_ptr()) == same_size  # written over where it fits


def test_interleaved_layouts_refuse_rows_not_in_sixteens():
    blocks = torch.from_numpy(random_blocks("Q4_K", n=24))
    with pytest.raises(RuntimeError, match="interleaves 16 rows"):
        cpu_gguf_dot.relayout(blocks, "Q4_K", "Q4_K_X16", K)


@pytest.mark.parametrize("block_type", ["Q4_K", "Q8_0"])
@pytest.mark.parametrize("bfloat16", [False, True])
def test_prefill_rows_take_dequantized_slices_of_the_same_weight(block_type, bfloat16, monkeypatch):
    """Float32 slices; or, where bfloat16 GEMMs are native, x and the slices rounded to bfloat16 and the
    product rounded once more (8 significant bits), both paths checked on any CPU."""
    monkeypatch.setattr(cpu_quant, "bfloat16_matmuls_pay", lambda: bfloat16)
    raw = random_blocks(block_type, n=72, seed=7)  # rows not in sixteens: the file's layout or regrouped rows
    weight = CpuGgufWeight.from_file(torch.from_numpy(raw), block_type, K)
    assert cpu_gguf_dot.rows_per_block(weight.block_type) == 1 and weight.dense_from_rows == 64
    x = torch.randn(weight.dense_from_rows, K)
    w = reference_weight(raw, block_type)
    got = weight.matmul(x).double()
    if not bfloat16:
        ref = x.double() @ w.double().t()
        assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        return
    ref = x.bfloat16().double() @ w.bfloat16().double().t()
    assert ((got - ref).abs() <= 2**-8 * ref.abs() + 1e-6 * ref.abs().max()).all()
    assert (got - x.double() @ w.double().t()).abs().max() > 0  # the rounding happened: not the float32 path


def test_interleaved_weights_take_the_kernel_at_prefill_sizes_too():
    """Their kernel beats de-quantized slices at every size measured (x taken 256 rows at a time)."""
    weight, raw = weight_of("Q4_K_X16", seed=12)
    x = torch.randn(300, K, generator=torch.Generator().manual_seed(12))  # more than one slice of 256 rows of x
    kernel = cpu_gguf_dot.gguf_mm(x, weight.blocks, weight.block_type, K)
    assert weight.dense_from_rows == sys.maxsize and torch.equal(weight.matmul(x), kernel)
    ref = rounded(x, 256) @ reference_weight(raw, "Q4_K").double().t()
    assert (kernel.double() - ref).abs().max() <= 1e-5 * ref.abs().max()


@pytest.mark.parametrize("amx", [False, True])
def test_weights_are_interleaved_except_where_amx_multiplies_bfloat16(amx, monkeypatch):
    monkeypatch.setattr(cpu_quant, "amx_bfloat16", lambda: amx)
    weight = CpuGgufWeight.from_file(torch.from_numpy(random_blocks("Q4_K", seed=13)), "Q4_K", K)
    assert weight.block_type == ("Q4_K_R" if amx else "Q4_K_X16")


@pytest.mark.parametrize("rows", [1, 8, 63, 64])
def test_a_linear_calls_its_bound_decode_kernel_with_the_same_result_as_matmul(rows):
    """`QuantizedLinear`'s decode path (the kernel bound to the weight once) gives exactly what the general
    path gives, bias added; prefill-size x (`dense_from_rows` on) keeps the de-quantized slices."""
    raw = random_blocks("Q4_K", n=72, seed=11)  # regrouped rows, not interleaved
    weight = CpuGgufWeight.from_file(torch.from_numpy(raw), "Q4_K", K)
    bias = torch.randn(72)
    linear = QuantizedLinear(weight, bias)
    assert linear._decode is not None and linear._decode_rows == weight.dense_from_rows == 64
    x = torch.randn(rows, K)
    assert torch.equal(linear(x), weight.matmul(x) + bias)
    calls = []
    bound = linear._decode
    linear._decode = lambda x: calls.append(x) or bound(x)
    linear(x)
    assert len(calls) == (1 if rows < weight.dense_from_rows else 0)


@pytest.mark.parametrize("layout", list(cpu_gguf_dot.INTERLEAVED.values()))
def test_rows_of_an_interleaved_weight_are_the_files_rows(layout):
    weight, raw = weight_of(layout, seed=4)
    index = torch.tensor([[79, 0], [17, 17], [33, 2]])
    assert torch.equal(weight.rows(index, torch.float32), reference_weight(raw, FILE_TYPE[layout])[index])


def test_embedding_rows_and_concatenation():
    raw = random_blocks("Q5_0", seed=3)
    weight = CpuGgufWeight(torch.from_numpy(raw), "Q5_0", K)
    index = torch.tensor([[5, 0], [79, 5]])
    full = reference_weight(raw, "Q5_0")
    assert torch.equal(weight.rows(index, torch.float32), full[index])
    both = CpuGgufWeight.cat([weight, CpuGgufWeight(torch.from_numpy(raw[:8].copy()), "Q5_0", K)])
    assert both.shape == (N + 8, K) and torch.equal(both.dequantize()[N:], full[:8])


def test_a_row_of_the_wrong_size_is_refused():
    raw = torch.from_numpy(random_blocks("Q4_K"))
    with pytest.raises(RuntimeError, match="bytes of this type"):
        cpu_gguf_dot.gguf_mm(torch.randn(1, 512), raw, "Q4_K", 512)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU")
def test_the_kernels_split_their_work_over_torchs_threads():
    """at::parallel_for's loop is inline OpenMP: built without -fopenmp it runs on one thread, silently
    (every kernel here did until 2026-12-06, at half the speed on two cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert cpu_gguf_dot.load_kernel().threads_used(256) == 2
    finally:
        torch.set_num_threads(before)
