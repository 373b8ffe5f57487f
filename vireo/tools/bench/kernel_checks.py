"""Correctness checks the kernel benchmark runs on the GPU before timing anything.

Fresh random inputs (never zeros), outputs poisoned with NaN, float64/float32 references;
relative error ||out - ref|| / ||ref|| must stay under the dtype's bound.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from triton.runtime.errors import OutOfResources

from vireo.kernels import attention, dense_gemv, flash_prefill, fused, quant
from vireo.kernels.attention_ref import contiguous_prefill_reference
from vireo.kernels.gemv_kmajor import KMajorGemvConfig
from vireo.kernels.gemv_layout import with_kmajor, with_mma
from vireo.kernels.quant_gemv import GemvConfig, gemv_supported
from vireo.kernels.quant_mma import MmaConfig
from vireo.kernels.qweight import Int4Weight, Int8Weight, dequantize, quantize_int4, quantize_int8

BOUND = {torch.bfloat16: 1e-2, torch.float16: 1e-2, torch.float32: 1e-5}


def rel_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """||out - ref|| / ||ref|| in float64; NaN anywhere gives inf."""
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return math.inf
    return ((out - ref).norm() / ref.norm()).item()


def _record(results: list, name: str, out, ref, dtype) -> None:
    err = rel_error(out, ref)
    results.append({"check": name, "rel_error": err, "bound": BOUND[dtype], "ok": err <= BOUND[dtype]})


def check_quant(results: list, device, dtype=torch.bfloat16, configs=()) -> None:
    """W8A16 / W4A16 against x @ dequantized(W) in float64, odd and benchmark shapes."""
    shapes = [
        (1, 4096, 4096, 128),
        (3, 1000, 576, 64),
        (7, 333, 200, 32),
        (16, 14336, 4096, 128),
        (300, 1000, 576, 64),
        (4, 14336, 4096, 128),
        (2, 333, 200, 32),
        (1, 4096, 14336, 64),
    ]
    for m, n, k, group in shapes:
        weight = torch.randn(n, k, device=device)
        x = torch.randn(m, k, device=device, dtype=dtype)
        w4 = quantize_int4(weight, group).to(scale_dtype=torch.float16)
        w8 = quantize_int8(weight)
        # (name, kernel, weight): each kernel gets the weight kind it takes
        cases: list[tuple[str, Callable[..., torch.Tensor], Int8Weight | Int4Weight]] = [
            ("w4a16", quant.w4a16_matmul, w4),
            ("w8a16", quant.w8a16_matmul, w8),
        ]
        if m <= 4:  # decode sizes: the int8 weight as the loader keeps it, with its GEMV layout
            cases.append(("w8a16 kmajor", quant.w8a16_matmul, with_kmajor(w8)))
        if m <= 8:  # int4 small M: the tensor-core layout
            cases.append(("w4a16 mma", quant.w4a16_matmul, with_mma(w4)))
        for name, fn, w in cases:
            ref = x.double() @ dequantize(w).double().t()
            for cfg in (None, *[c for c in configs if _applies(c, w, m)]):
                out = torch.full((m, n), math.nan, device=device, dtype=dtype)
                fn(x, w, out=out, config=cfg)
                _record(results, f"{name} M{m} N{n} K{k} g{group} {cfg or 'default'}", out, ref, dtype)


def check_dense(results: list, device) -> None:
    """The decode-size dense GEMV (bf16, fp16; with and without bias) against float64."""
    for m, n, k in [(1, 4096, 4096), (3, 1000, 576), (4, 6144, 4096), (1, 333, 14336)]:
        for dtype in (torch.bfloat16, torch.float16):
            w = torch.randn(n, k, device=device, dtype=dtype)
            x = torch.randn(m, k, device=device, dtype=dtype)
            for bias in (None, torch.randn(n, device=device, dtype=dtype)):
                out = torch.full((m, n), math.nan, device=device, dtype=dtype)
                dense_gemv.dense_gemv(x, w, bias, out=out)
                ref = x.double() @ w.double().t() + (0 if bias is None else bias.double())
                _record(results, f"dense gemv M{m} N{n} K{k} {dtype} bias={bias is not None}", out, ref, dtype)


def _applies(config, w, m: int) -> bool:
    """K-major GEMV and MMA configs go with weights that carry that layout, others with the rest;
    FMA GEMV configs only with int4 weights that kernel takes."""
    mma = getattr(w, "mma", None) is not None
    kmajor = getattr(w, "kmajor", None) is not None
    if isinstance(config, GemvConfig):
        return isinstance(w, Int4Weight) and not mma and gemv_supported(w, m, config)
    if isinstance(config, MmaConfig) or mma:
        return isinstance(config, MmaConfig) and mma
    return isinstance(config, KMajorGemvConfig) == kmajor


def _paged_case(device, dtype, batch, heads, kv_heads, dim, block_size, ctxs, q_lens):
    """Random paged cache with shuffled physical blocks, plus packed queries."""
    blocks = [-(-c // block_size) for c in ctxs]
    total = sum(blocks) + 2
    k_cache = torch.randn(total, block_size, kv_heads, dim, device=device, dtype=dtype)
    v_cache = torch.randn(total, block_size, kv_heads, dim, device=device, dtype=dtype)
    perm = torch.randperm(total, device=device).to(torch.int32)
    tables = torch.zeros(batch, max(blocks), dtype=torch.int32, device=device)
    start = 0
    for b, n in enumerate(blocks):
        tables[b, :n] = perm[start : start + n]
        start += n
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32, device=device)
    q = torch.randn(int(cu[-1]), heads, dim, device=device, dtype=dtype)
    ctx = torch.tensor(ctxs, dtype=torch.int32, device=device)
    return q, k_cache, v_cache, tables, cu, ctx


def check_attention(results: list, device, dtype=torch.bfloat16) -> None:
    """Prefill (prefix + new tokens, varlen, GQA) and decode against float64 references."""
    for block_size in (16, 256):
        q, kc, vc, bt, cu, ctx = _paged_case(device, dtype, 3, 32, 8, 128, block_size, [1500, 700, 129], [1000, 700, 1])
        scale = 1 / math.sqrt(128)
        ref = attention.prefill_attention_reference(
            q.double().cpu(), kc.double().cpu(), vc.double().cpu(), bt.cpu(), cu.cpu(), ctx.cpu(), scale
        )
        out = torch.full_like(q, math.nan)
        attention.prefill_attention(q, kc, vc, bt, cu, ctx, max_q_len=1000, out=out)
        _record(results, f"prefill bs{block_size}", out.cpu(), ref, dtype)
        qd = torch.randn(3, 32, 128, device=device, dtype=dtype)
        refd = attention.decode_attention_reference(
            qd.double().cpu(), kc.double().cpu(), vc.double().cpu(), bt.cpu(), ctx.cpu(), scale
        )
        for splits in (1, None):
            out = torch.full_like(qd, math.nan)
            attention.decode_attention(qd, kc, vc, bt, ctx, max_context=1500, out=out, splits=splits)
            _record(results, f"decode bs{block_size} splits={splits}", out.cpu(), refd, dtype)


def check_flash_prefill(results: list, device, configs=()) -> None:
    """Fresh-prompt prefill (contiguous K/V) against float64: odd lengths, GQA and MHA, K/V as
    strided slices of one fused qkv row, bf16 and fp16, the default and every given config."""
    lens = [1000, 1, 2049, 130, 17]
    cu = torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)
    for dtype, heads, kv_heads in ((torch.bfloat16, 32, 8), (torch.float16, 32, 8), (torch.bfloat16, 16, 16)):
        qkv = torch.randn(int(cu[-1]), (heads + 2 * kv_heads) * 128, device=device, dtype=dtype)
        q = qkv[:, : heads * 128].view(-1, heads, 128)
        k = qkv[:, heads * 128 : (heads + kv_heads) * 128].view(-1, kv_heads, 128)
        v = qkv[:, (heads + kv_heads) * 128 :].view(-1, kv_heads, 128)
        ref = contiguous_prefill_reference(q.double(), k.double(), v.double(), cu, 1 / math.sqrt(128))
        cfgs = (None, *configs) if (dtype, kv_heads) == (torch.bfloat16, 8) else (None,)
        for cfg in cfgs:
            out = torch.full_like(q, math.nan)
            try:
                flash_prefill.flash_prefill(q, k, v, cu, max(lens), out=out, config=cfg)
            except OutOfResources as e:  # a tile too big for this card's shared memory: not run
                results.append(
                    {"check": f"flash {dtype} H{heads}/{kv_heads} {cfg}", "skipped": repr(e)[:300], "ok": None}
                )
                continue
            except Exception as e:  # any other failure to run is a failed check
                results.append(
                    {
                        "check": f"flash {dtype} H{heads}/{kv_heads} {cfg}",
                        "error": repr(e)[:300],
                        "ok": False,
                        "rel_error": math.inf,
                    }
                )
                continue
            _record(results, f"flash {str(dtype)[6:]} H{heads}/{kv_heads} {cfg or 'default'}", out, ref, dtype)


def check_fused(results: list, device, dtype=torch.bfloat16) -> None:
    """RMSNorm(+residual), rope and silu-and-mul against float64 references."""
    x = torch.randn(37, 4096, device=device, dtype=dtype)
    r = torch.randn_like(x)
    w = torch.randn(4096, device=device, dtype=dtype)
    out = torch.full_like(x, math.nan)
    res_out = torch.full_like(x, math.nan)
    fused.rms_norm(x, w, 1e-5, residual=r, out=out, residual_out=res_out)
    ref, ref_res = fused.rms_norm_reference(x.double(), w.double(), 1e-5, r.double())
    _record(results, "rms_norm+residual", out, ref, dtype)
    _record(results, "residual add", res_out, ref_res, dtype)
    t = torch.randn(37, 32, 128, device=device, dtype=dtype)
    pos = torch.randint(0, 8192, (37,), device=device)
    cs = fused.rope_cos_sin(8192, 128, 500000.0, device=device)
    out = torch.full_like(t, math.nan)
    fused.apply_rope(t, pos, cs, out=out)
    _record(results, "rope", out, fused.rope_reference(t.double(), pos, cs.double()), dtype)
    g = torch.randn(37, 2 * 14336, device=device, dtype=dtype)
    out = torch.full((37, 14336), math.nan, device=device, dtype=dtype)
    fused.silu_and_mul(g, out=out)
    _record(results, "silu_and_mul", out, fused.silu_and_mul_reference(g.double()), dtype)


def run_all(device, quant_configs=(), flash_configs=()) -> list[dict]:
    """Every check; each entry has name, relative error, bound and ok."""
    results: list[dict] = []
    torch.manual_seed(1234)
    check_quant(results, device, configs=quant_configs)
    check_quant(results, device, dtype=torch.float16)
    check_dense(results, device)
    check_attention(results, device)
    check_flash_prefill(results, device, flash_configs)
    check_fused(results, device)
    return results


def run_attention(device, flash_configs=()) -> list[dict]:
    """The attention checks alone (paged prefill/decode, contiguous prefill)."""
    results: list[dict] = []
    torch.manual_seed(1234)
    check_attention(results, device)
    check_flash_prefill(results, device, flash_configs)
    return results
