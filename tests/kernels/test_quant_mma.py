"""The int4 tensor-core layout (made at load) and the small-M tensor-core kernel that reads it."""

import math

import pytest
import torch

from tests.kernels.numerics import BOUND, rel_error
from vireo.kernels import quant, quant_mma
from vireo.kernels.gemv_layout import unpack_mma, with_mma
from vireo.kernels.quant_mma import MmaConfig, pick_mma_config
from vireo.kernels.qweight import dequantize, quantize_int4, unpack_int4

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _poisoned(m, n, dtype):
    return torch.full((m, n), math.nan, dtype=dtype)


def _weight(n, k, group):
    return with_mma(quantize_int4(torch.randn(n, k), group).to(scale_dtype=torch.float16))


@pytest.mark.parametrize("group", [128, 64, 32, 16])
def test_layout_holds_the_checkpoint_nibbles(group):
    w = _weight(21, 200, group)
    q = unpack_mma(w.mma)
    assert torch.equal(q[:21, :200], unpack_int4(w.qweight, 200).t())
    assert not q[:, 200:].any() and not q[21:].any()
    scales = w.mma.scales.transpose(1, 2).flatten(0, 1)[..., 0]  # row tiles back to [N_pad, G]
    assert torch.equal(scales[:21], w.scales.t().float())
    assert torch.equal(w.mma.zero_scales, (w.zeros.t().float() + 16) * w.scales.t().float())


def test_layout_refuses_group_sizes_the_kernel_cannot_tile():
    with pytest.raises(ValueError):
        with_mma(quantize_int4(torch.randn(8, 96), 48))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,k,group,config",
    [
        (1, 128, 512, 128, MmaConfig(128, 1)),  # no masks, one program for two row tiles
        (3, 70, 200, 32, MmaConfig(64, 2)),  # ragged N and K, split over two programs
        (8, 64, 512, 64, MmaConfig(64, 4)),  # M = 8, the most it takes; four splits
        (7, 40, 136, 128, MmaConfig(128, 4)),  # fewer groups than splits, rows past N_pad
        (5, 33, 300, 32, MmaConfig(64, 3)),  # a split that gets fewer groups
        (2, 300, 264, 64, None),  # the dispatcher's own choice (N >= K)
        (1, 32, 80, 16, MmaConfig(64, 2)),  # the smallest group: K tiles of 16
        (1, 16, 4096, 32, MmaConfig(64, 1)),  # 128 groups: split to 16 groups a program
    ],
)
def test_matches_dequantized_reference(triton_on, dtype, m, n, k, group, config):
    w = _weight(n, k, group)
    x = torch.randn(m, k).to(dtype)
    out = _poisoned(m, n, dtype)
    quant.w4a16_matmul(x, w, out=out, config=config)
    assert rel_error(out, x.double() @ dequantize(w).double().t()) <= BOUND[dtype]


def test_split_k_leaves_its_counters_zero(triton_on):
    w = _weight(96, 512, 64)
    x = torch.randn(2, 512)
    quant.w4a16_matmul(x, w, config=MmaConfig(64, 4))
    out = quant.w4a16_matmul(x, w, config=MmaConfig(64, 4))  # a second launch reuses them
    assert not quant_mma._LOCKS[x.device].any()
    assert rel_error(out, x.double() @ dequantize(w).double().t()) <= 1e-5


@pytest.mark.parametrize("m", [2, 8])
def test_small_m_reads_only_the_mma_layout(triton_on, m):
    w = _weight(256, 256, 128)
    x = torch.randn(m, 256)
    ref = x.double() @ dequantize(w).double().t()
    w.qweight.zero_()  # at M 2..8 the dispatcher must not read the checkpoint layout
    assert rel_error(quant.w4a16_matmul(x, w), ref) <= 1e-5


def test_mma_config_without_the_layout_is_refused(triton_on):
    w = quantize_int4(torch.randn(8, 128), 128)
    with pytest.raises(ValueError):
        quant.w4a16_matmul(torch.randn(1, 128), w, config=MmaConfig(64, 1))
    with pytest.raises(ValueError):  # programs cover whole row tiles of the layout
        quant.w4a16_matmul(torch.randn(1, 128), with_mma(w), config=MmaConfig(32, 1))
    with pytest.raises(ValueError):  # M is padded to 8 on the MMA's activation side
        quant.w4a16_matmul(torch.randn(9, 128), with_mma(w), config=MmaConfig(64, 1))


@pytest.mark.parametrize("m,n,k", [(1, 24, 256), (9, 24, 256), (16, 24, 256), (4, 24, 512)])
def test_dispatcher_leaves_other_sizes_to_the_other_kernels(triton_on, m, n, k):
    w = _weight(n, k, 128)  # M = 1, M > 8, or K > N (where the H200 measured it slower)
    x = torch.randn(m, k)
    ref = x.double() @ dequantize(w).double().t()
    w.mma.words.zero_()  # these read the checkpoint layout
    assert rel_error(quant.w4a16_matmul(x, w), ref) <= 1e-5


def test_picked_split_keeps_two_groups_per_program():
    cfg = pick_mma_config(4096, 4096, 128, torch.device("cpu"))
    assert cfg.split_k > 1 and 32 // cfg.split_k >= 2
    assert pick_mma_config(4096, 256, 128, torch.device("cpu")).split_k == 1
