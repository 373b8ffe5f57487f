"""GPTQ and AWQ beat round-to-nearest on the output error they are designed to reduce."""

import pytest
import torch

from vireo.inference.quant.awq import fake_quantize, search_scale
from vireo.inference.quant.gptq import HessianAccumulator, gptq_quantize
from vireo.kernels.qweight import dequantize, quantize_int4, quantize_int8


def correlated_inputs(tokens=2048, features=128, seed=0):
    """Inputs whose features are strongly correlated (a random mixing of a few sources)."""
    g = torch.Generator().manual_seed(seed)
    sources = torch.randn(tokens, 16, generator=g)
    mixing = torch.randn(16, features, generator=g)
    return sources @ mixing + 0.05 * torch.randn(tokens, features, generator=g)


def output_error(x, w, w_hat):
    return ((x @ w.t() - x @ w_hat.t()).pow(2).mean() / (x @ w.t()).pow(2).mean()).item()


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 128), (8, 0)])
def test_gptq_error_below_rtn_on_correlated_inputs(bits, group):
    x = correlated_inputs()
    w = torch.randn(64, 128)
    hessian = HessianAccumulator(128)
    for chunk in x.split(512):
        hessian.add(chunk)
    rtn = quantize_int4(w, group) if bits == 4 else quantize_int8(w)
    gptq = gptq_quantize(w, hessian.hessian, bits, group or 128)
    assert output_error(x, w, dequantize(gptq)) < 0.8 * output_error(x, w, dequantize(rtn))


def test_awq_scale_search_protects_channels_with_large_activations():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1024, 128, generator=g)
    x[:, :4] *= 30  # a few outlier channels, as LLM activations have
    w = torch.randn(96, 128, generator=g)
    scale = search_scale(x, [w], bits=4, group_size=128)
    rtn = fake_quantize(w, 4, 128)
    awq = fake_quantize(w * scale, 4, 128) / scale
    assert output_error(x, w, awq) < output_error(x, w, rtn)
    assert scale[:4].mean() > scale[4:].mean()
