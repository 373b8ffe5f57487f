"""Quantize / dequantize round trips of the weight formats stay within half a grid step."""

import pytest
import torch

from vireo.kernels.qweight import dequantize, pack_int4, quantize_int4, quantize_int8, unpack_int4


def test_pack_unpack_int4_is_exact_for_odd_k():
    q = torch.randint(0, 16, (37, 11), dtype=torch.uint8)
    assert torch.equal(unpack_int4(pack_int4(q), 37), q)


def test_int8_error_is_at_most_half_a_step_per_channel():
    w = torch.randn(48, 200) * torch.logspace(-2, 1, 48)[:, None]  # rows of very different size
    q = quantize_int8(w)
    err = (dequantize(q) - w).abs()
    assert (err <= q.scales[:, None] / 2 + 1e-7).all()


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_error_is_at_most_half_a_step_per_group(group):
    w = torch.randn(24, 200) + 0.3  # K not a multiple of the group: a partial last group
    q = quantize_int4(w, group)
    step = q.scales.t().repeat_interleave(group, dim=1)[:, :200]
    assert ((dequantize(q) - w).abs() <= step / 2 + 1e-6).all()
    assert q.qweight.shape == (25, 24) and q.scales.shape == (-(-200 // group), 24)


def test_smaller_groups_give_smaller_error():
    w = torch.randn(64, 512)
    errors = [(dequantize(quantize_int4(w, g)) - w).pow(2).mean() for g in (128, 64, 32)]
    assert errors[0] > errors[1] > errors[2]
