"""GPU benchmark of the kernels against their torch/cuBLAS baselines, one run, one card.

    python -m vireo.tools.bench.kernels --json out.json [--sweep]

Checks correctness first (vireo.tools.bench.kernel_checks), measures the card's ceilings (copy
bandwidth, bf16 matmul), then times each kernel and its baseline side by side with
`triton.testing.do_bench` (median; L2 flushed before every call, inputs rotated past L2).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import time
from typing import Any, Callable

import torch
import triton
import triton.testing

from vireo.kernels import attention, dense_gemv, flash_prefill, fused, gemv_kmajor, quant, quant_gemv, quant_mma
from vireo.kernels.gemv_layout import with_kmajor, with_mma
from vireo.kernels.qweight import quantize_int4, quantize_int8
from vireo.kernels.split_k import copy_out_and_clear, split_k_target
from vireo.tools.bench import kernel_checks
from vireo.tools.machine import machine_info, source_commit

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336)]  # (N, K): Llama-8B's qkv/o, gate/up, down
MS = [1, 2, 4, 8, 16, 128, 4096]
ROTATE_BYTES = 128 << 20


def timed(fn, warmup=25, rep=100) -> float:
    """Median milliseconds of fn() (do_bench: L2 flushed before each call)."""
    return triton.testing.do_bench(fn, warmup=warmup, rep=rep, return_mode="median")


def timed_graph(fn, rep=20) -> float:
    """Median milliseconds of fn() replayed back to back from a CUDA graph.

    For kernels of a few microseconds: do_bench's L2 flush leaves ~50 MB of dirty lines that
    the timed kernel must write back (~10 us on an H200), and launch gaps would dominate;
    a decode step runs from a graph anyway. Inputs still rotate past the L2.
    """
    return triton.testing.do_bench_cudagraph(fn, rep=rep, return_mode="median")


def rotating(make, one_bytes: int):
    """Enough copies of an input to cycle past the L2, and a getter that walks them."""
    copies = [make() for _ in range(max(1, math.ceil(ROTATE_BYTES / max(one_bytes, 1))))]
    state = {"i": 0}

    def next_one():
        state["i"] = (state["i"] + 1) % len(copies)
        return copies[state["i"]]

    return next_one


def ceilings(dev) -> dict:
    """Device copy bandwidth (read + write) and bf16 matmul rate, measured now."""
    src = torch.randn(1 << 28, device=dev)  # 1 GiB
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
    mm = timed(lambda: a @ b)
    return {"copy_GBps": 2 * src.numel() * 4 / ms / 1e6, "bf16_matmul_TFLOPs": 2 * 8192**3 / mm / 1e9}


def quant_inputs(dev, n: int, k: int) -> dict:
    """Rotating bf16 / int4 (g128) / int8 copies of one random weight [N, K], each quantized one
    carrying its decode layout as the loader makes it; rotation counts the bytes of one layout."""
    weight = torch.randn(n, k, device=dev) * 0.02
    return {
        "dense": rotating(lambda: weight.to(torch.bfloat16).clone(), n * k * 2),
        "w4a16": rotating(lambda: with_mma(quantize_int4(weight, 128).to(scale_dtype=torch.float16)), n * k // 2),
        "w8a16": rotating(lambda: with_kmajor(quantize_int8(weight)), n * k),
    }


KERNELS: dict[str, Callable[..., torch.Tensor]] = {"w4a16": quant.w4a16_matmul, "w8a16": quant.w8a16_matmul}


def bench_quant(dev, m_values=tuple(MS)) -> list[dict]:
    """W4A16 (g128) and W8A16 vs cuBLAS bf16 at each (M, N, K), the dispatcher's choices."""
    rows = []
    for n, k in SHAPES:
        inputs = quant_inputs(dev, n, k)
        dense = inputs["dense"]
        for m in m_values:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            base = timed_graph(lambda: torch.nn.functional.linear(x, dense()))
            row = {"M": m, "N": n, "K": k, "cublas_bf16_ms": base}
            for name, fn in KERNELS.items():
                w = inputs[name]
                bits = 4 if name == "w4a16" else 8
                row[f"{name}_ms"] = ms = timed_graph(lambda: fn(x, w()))
                row[f"{name}_speedup"] = base / ms
                for label, cfg in _alternatives(m, n, k, bits):
                    row[f"{name}_{label}_ms"] = timed_graph(lambda: fn(x, w(), config=cfg))
            bytes4 = n * k / 2 + n * math.ceil(k / 128) * 3 + m * (k + n) * 2
            row["w4a16_GBps"] = bytes4 / row["w4a16_ms"] / 1e6
            row["w8a16_GBps"] = (n * k + n * 4 + m * (k + n) * 2) / row["w8a16_ms"] / 1e6
            row["cublas_GBps"] = (n * k + m * (k + n)) * 2 / base / 1e6
            rows.append(row)
            print(
                f"quant M={m} N={n} K={k}: cublas {base * 1e3:.1f}us w4 {row['w4a16_ms'] * 1e3:.1f}us "
                f"({row['w4a16_speedup']:.2f}x) w8 {row['w8a16_ms'] * 1e3:.1f}us "
                f"({row['w8a16_speedup']:.2f}x)",
                flush=True,
            )
    return rows


def _alternatives(m: int, n: int, k: int, bits: int) -> list[tuple[str, object]]:
    """The paths the dispatcher did not take, timed for the record."""
    dev = torch.device("cuda")
    alts: list[tuple[str, object]] = [("tensorcore", quant.pick_config(n, k, bits, dev))]
    if bits == 4 and m <= quant_mma.MAX_M:
        alts.append(("mma", quant_mma.pick_mma_config(n, k, 128, dev)))
    if bits == 4 and m <= quant_gemv.MAX_M:
        gemv = quant_gemv.pick_gemv_config(n, k, 128, dev)
        alts += [("gemv", gemv), ("gemvexact", dataclasses.replace(gemv, high=False))]
    if bits == 8 and m <= 4:
        alts.append(("kmajor", gemv_kmajor.pick_kmajor_config(n, k, dev)))
    return alts


def split_k_overhead(dev, n: int = 4096) -> dict:
    """What a split-K launch adds around its kernel (M = 1): now one kernel that copies the kept
    fp32 row out and clears it; before, a fill of a fresh row and a cast-copy (timed beside it)."""
    out = torch.empty(1, n, device=dev, dtype=torch.bfloat16)
    acc = split_k_target(out, 2)

    def fill_and_copy():
        out.copy_(torch.zeros(out.shape, dtype=torch.float32, device=dev))

    return {
        "N": n,
        "copy_out_and_clear_ms": timed_graph(lambda: copy_out_and_clear(acc, out)),
        "zero_and_copy_ms": timed_graph(fill_and_copy),
    }


def sweep_quant(dev, budget_s: float, m_values=(1, 4, 16)) -> list[dict]:
    """Time candidate configs at each M for each shape, within a time budget."""
    start = time.time()
    rows: list[dict] = []
    for n, k in SHAPES:
        inputs = quant_inputs(dev, n, k)
        for m in m_values:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            dense = inputs["dense"]
            base = timed_graph(lambda: torch.nn.functional.linear(x, dense()))
            for name, configs in sweep_configs().items():
                left = budget_s - (time.time() - start)
                if left <= 0:
                    return rows
                best = sweep(KERNELS[name], x, inputs[name], configs[m], base, start + budget_s)
                rows.append({"kernel": name, "M": m, "N": n, "K": k, "cublas_bf16_ms": base, "best": best})
                if best:
                    print(f"sweep {name} M={m} N={n} K={k}: {best[0]}", flush=True)
    return rows


def sweep(fn, x, w, configs, base, deadline: float) -> list[dict]:
    """Time each config until the deadline; keep the 5 fastest."""
    out: list[dict[str, Any]] = []
    for cfg in configs:
        if time.time() > deadline:
            break
        try:
            ms = timed_graph(lambda: fn(x, w(), config=cfg), rep=10)
        except Exception as e:  # a config can exceed shared memory: skip it, say why
            out.append({"config": str(cfg), "error": type(e).__name__})
            continue
        out.append({"config": str(cfg), "ms": ms, "speedup": base / ms})
    return sorted((o for o in out if "ms" in o), key=lambda o: o["ms"])[:5]


def sweep_configs() -> dict:
    """Candidates: the int4 FMA GEMV at M = 1 (columns, rows per step, split, warps, exact or
    high-mantissa nibbles), then the small-M tensor-core kernel (rows, split, warps, stages)."""
    g = quant_gemv.GemvConfig
    gemv = [
        g(bn, rows, sk, warps, 2, True)
        for bn in (512, 1024, 256)
        for rows in (8, 4)
        for warps in (2, 4)
        for sk in (64, 32)
    ] + [g(256, 8, 64, 4, 2, False)]
    c = quant_mma.MmaConfig
    w4 = [c(64, sk, 4, 1) for sk in (4, 8, 16)]
    w4 += [c(128, 4, 4, 1), c(128, 8, 4, 1), c(128, 8, 8, 1), c(256, 8, 8, 1)]
    return {"w4a16": {1: gemv + w4, 2: w4, 4: w4, 8: w4}}


DENSE_SHAPES = [(4096, 4096), (6144, 4096), (28672, 4096), (4096, 14336), (128256, 4096)]
DENSE_SWEEP = tuple(
    dense_gemv.DenseGemvConfig(*c)
    for c in (
        (8, 512, 4, 3),
        (4, 1024, 4, 3),
        (16, 256, 4, 3),
        (4, 512, 2, 3),
        (2, 1024, 4, 3),
        (16, 512, 8, 3),
        (8, 256, 2, 4),
    )
)


def bench_dense(dev, configs=DENSE_SWEEP, m: int = 1) -> list[dict]:
    """bf16 decode GEMV (`dense_gemv`) vs cuBLAS (`F.linear`) at Llama-8B's decode shapes (qkv,
    o, gate/up fused, down, LM head): every config, checked against float64 first."""
    rows = []
    for n, k in DENSE_SHAPES:
        w0 = torch.randn(n, k, device=dev, dtype=torch.bfloat16)
        weights = rotating(lambda: w0.clone(), n * k * 2)
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        ref = x.double() @ w0.double().t()
        base = timed_graph(lambda: torch.nn.functional.linear(x, weights()))
        row: dict[str, Any] = {
            "M": m,
            "N": n,
            "K": k,
            "cublas_bf16_ms": base,
            "cublas_GBps": n * k * 2 / base / 1e6,
            "configs": [],
        }
        for cfg in configs:
            out = torch.full((m, n), math.nan, device=dev, dtype=torch.bfloat16)
            dense_gemv.dense_gemv(x, w0, out=out, config=cfg)
            err = kernel_checks.rel_error(out, ref)
            ms = timed_graph(lambda: dense_gemv.dense_gemv(x, weights(), config=cfg))
            row["configs"].append(
                {
                    "config": str(cfg),
                    "rel_error": err,
                    "ok": err <= 1e-2,
                    "ms": ms,
                    "speedup": base / ms,
                    "GBps": n * k * 2 / ms / 1e6,
                }
            )
        best = min((c for c in row["configs"] if c["ok"]), key=lambda c: c["ms"])
        print(
            f"dense M={m} N={n} K={k}: cublas {base * 1e3:.1f}us ({row['cublas_GBps']:.0f} GB/s), "
            f"best {best['ms'] * 1e3:.1f}us = {best['speedup']:.2f}x {best['config']}",
            flush=True,
        )
        rows.append(row)
    return rows


def bench_prefill(dev, configs=((128, 128, 8, 3),), b=4, h=32, s=4096, d=128) -> list[dict]:
    """Causal prefill B4 H32 S4096 D128 from the paged cache vs SDPA (MHA, contiguous)."""
    flops = 2 * b * h * s * s * d  # two matmuls, half of the square under the causal mask
    q = torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16)
    k = torch.randn_like(q)
    v = torch.randn_like(q)
    sdpa = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
    rows = []
    for kv_heads, block_size in ((h, 256), (h // 4, 256), (h // 4, 16)):
        kc = k[:, :kv_heads].transpose(1, 2).reshape(b * s // block_size, block_size, kv_heads, d)
        vc = v[:, :kv_heads].transpose(1, 2).reshape(b * s // block_size, block_size, kv_heads, d)
        tables = torch.arange(b * s // block_size, device=dev, dtype=torch.int32).view(b, -1)
        qp = q.transpose(1, 2).reshape(b * s, h, d).contiguous()
        cu = torch.arange(0, b * s + 1, s, device=dev, dtype=torch.int32)
        ctx = torch.full((b,), s, device=dev, dtype=torch.int32)
        for bm, bn, warps, stages in configs:
            ms = timed(
                lambda: attention.prefill_attention(
                    qp, kc, vc, tables, cu, ctx, s, block_m=bm, block_n=bn, num_warps=warps, num_stages=stages
                )
            )
            rows.append(
                {
                    "kv_heads": kv_heads,
                    "block_size": block_size,
                    "config": [bm, bn, warps, stages],
                    "ms": ms,
                    "TFLOPs": flops / ms / 1e9,
                    "sdpa_ms": sdpa,
                    "sdpa_TFLOPs": flops / sdpa / 1e9,
                    "vs_sdpa": sdpa / ms,
                }
            )
            print(
                f"prefill kvh{kv_heads} bs{block_size} {bm},{bn},{warps},{stages}: "
                f"{flops / ms / 1e9:.0f} TFLOP/s vs sdpa {flops / sdpa / 1e9:.0f}",
                flush=True,
            )
    return rows


def bench_flash_prefill(dev, configs, gqa_top: int = 3, b=4, h=32, s=4096, d=128) -> list[dict]:
    """Causal prefill of fresh prompts (contiguous K/V, `flash_prefill`) vs SDPA, same shape as
    `bench_prefill`; every config at MHA, the gqa_top fastest (and the default) at 8 KV heads."""
    flops = 2 * b * h * s * s * d
    q = torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16)
    k = torch.randn_like(q)
    v = torch.randn_like(q)
    sdpa = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
    qp = q.transpose(1, 2).reshape(b * s, h, d).contiguous()
    cu = torch.arange(0, b * s + 1, s, device=dev, dtype=torch.int32)
    rows: list[dict] = []

    def run(kv_heads: int, cfg, base: float, base_name: str) -> None:
        kp = k[:, :kv_heads].transpose(1, 2).reshape(b * s, kv_heads, d).contiguous()
        vp = v[:, :kv_heads].transpose(1, 2).reshape(b * s, kv_heads, d).contiguous()
        try:
            ms = timed(lambda: flash_prefill.flash_prefill(qp, kp, vp, cu, s, config=cfg))
        except Exception as e:  # a config can exceed shared memory or registers: say why
            rows.append({"kv_heads": kv_heads, "config": str(cfg), "error": repr(e)[:300]})
            print(f"flash kvh{kv_heads} {cfg}: {type(e).__name__}", flush=True)
            return
        rows.append(
            {
                "kv_heads": kv_heads,
                "config": str(cfg),
                "ms": ms,
                "TFLOPs": flops / ms / 1e9,
                "sdpa_ms": base,
                "sdpa": base_name,
                "sdpa_TFLOPs": flops / base / 1e9,
                "vs_sdpa": base / ms,
            }
        )
        print(
            f"flash kvh{kv_heads} {cfg}: {flops / ms / 1e9:.0f} TFLOP/s = {base / ms:.2f}x "
            f"{base_name} ({flops / base / 1e9:.0f})",
            flush=True,
        )

    for cfg in configs:
        run(h, cfg, sdpa, "sdpa_mha")
    timed_ok = sorted((r for r in rows if "ms" in r), key=lambda r: r["ms"])
    best = [c for c in configs if str(c) in {r["config"] for r in timed_ok[:gqa_top]}]
    kg = k[:, : h // 4]
    vg = v[:, : h // 4]
    sdpa_gqa = timed(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, kg, vg, is_causal=True, enable_gqa=True)
    )
    for cfg in dict.fromkeys([flash_prefill.FlashConfig(), *best]):
        run(h // 4, cfg, sdpa, "sdpa_mha")
        rows[-1]["sdpa_gqa_ms"] = sdpa_gqa
    return rows


def bench_decode(dev, copy_gbps: float, configs=((64, 4, None),), b=16, h=32, kvh=8, d=128, ctx_len=8192) -> list[dict]:
    """Paged decode at 8k context, B16 H32 KVH8 D128: bandwidth vs the measured copy."""
    rows = []
    for block_size in (16, 256):
        blocks = b * ctx_len // block_size
        kc = torch.randn(blocks, block_size, kvh, d, device=dev, dtype=torch.bfloat16)
        vc = torch.randn_like(kc)
        tables = torch.randperm(blocks, device=dev).to(torch.int32).view(b, -1)
        ctx = torch.full((b,), ctx_len, device=dev, dtype=torch.int32)
        q = torch.randn(b, h, d, device=dev, dtype=torch.bfloat16)
        read = 2 * kc.numel() * 2
        for bn, warps, splits in configs:
            ms = timed(
                lambda: attention.decode_attention(
                    q, kc, vc, tables, ctx, ctx_len, splits=splits, block_n=bn, num_warps=warps
                )
            )
            gbps = read / ms / 1e6
            rows.append(
                {
                    "block_size": block_size,
                    "config": [bn, warps, splits],
                    "ms": ms,
                    "GBps": gbps,
                    "pct_of_copy": 100 * gbps / copy_gbps,
                }
            )
            print(
                f"decode bs{block_size} {bn},{warps},{splits}: {gbps:.0f} GB/s ({100 * gbps / copy_gbps:.0f}% of copy)",
                flush=True,
            )
    return rows


def bench_fused(dev, t=8192, hidden=4096, inter=14336) -> list[dict]:
    """RMSNorm+residual, rope, silu-and-mul vs eager torch (GB/s of the ideal traffic)."""
    bf = torch.bfloat16
    x, r = torch.randn(t, hidden, device=dev, dtype=bf), torch.randn(t, hidden, device=dev, dtype=bf)
    w = torch.randn(hidden, device=dev, dtype=bf)

    def torch_norm():
        s = x + r
        return torch.nn.functional.rms_norm(s, (hidden,), w, 1e-5), s

    q = torch.randn(t, 32, 128, device=dev, dtype=bf)
    pos = torch.randint(0, 8192, (t,), device=dev)
    cs = fused.rope_cos_sin(8192, 128, 500000.0, device=dev)

    def torch_rope():
        c = cs[pos]
        cos, sin = c[:, None, :64].to(bf), c[:, None, 64:].to(bf)
        cos, sin = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)
        rot = torch.cat([-q[..., 64:], q[..., :64]], -1)
        return q * cos + rot * sin

    g = torch.randn(t, 2 * inter, device=dev, dtype=bf)
    cases = [
        ("rms_norm+residual", lambda: fused.rms_norm(x, w, 1e-5, residual=r), torch_norm, 4 * x.numel() * 2),
        ("rope", lambda: fused.apply_rope(q, pos, cs), torch_rope, 2 * q.numel() * 2),
        (
            "silu_and_mul",
            lambda: fused.silu_and_mul(g),
            lambda: torch.nn.functional.silu(g[:, :inter]) * g[:, inter:],
            3 * t * inter * 2,
        ),
    ]
    rows = []
    for name, ours, theirs, nbytes in cases:
        ms, base = timed(ours), timed(theirs)
        rows.append({"kernel": name, "ms": ms, "torch_ms": base, "speedup": base / ms, "GBps": nbytes / ms / 1e6})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True)
    parser.add_argument("--sweep", action="store_true", help="also time candidate tile shapes")
    parser.add_argument(
        "--flash-sweep",
        action="store_true",
        help="time the contiguous prefill kernel's candidate configs (alone, without --sweep's other sweeps)",
    )
    parser.add_argument("--sweep-budget", type=float, default=200.0, help="seconds for the sweep")
    parser.add_argument("--sweep-ms", default="1,4,16", help="M values of the sweep")
    parser.add_argument("--ms", default=",".join(map(str, MS)), help="M values of the quant table")
    parser.add_argument("--skip", default="", help="comma-separated: dense, quant, prefill, flash, decode, fused")
    parser.add_argument("--checks", default="all", help="all, or attention (prefill/decode only)")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    dev = torch.device("cuda")
    report = {
        "card": torch.cuda.get_device_name(),
        "date": datetime.date.today().isoformat(),
        "commit": source_commit(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "machine": machine_info(packages=("torch", "triton"), gpu=True),
    }
    report["checks"] = (
        kernel_checks.run_attention(dev, FLASH_SWEEP)
        if args.checks == "attention"
        else kernel_checks.run_all(dev, CHECK_CONFIGS, FLASH_SWEEP)
    )
    bad = [c for c in report["checks"] if c["ok"] is False]
    skipped = sum(1 for c in report["checks"] if c["ok"] is None)
    print(
        f"checks: {len(report['checks']) - len(bad) - skipped} ok, {len(bad)} failed, "
        f"{skipped} configs skipped (out of resources on this card)",
        flush=True,
    )
    for c in bad:
        print("FAILED", c, flush=True)
    report["ceilings"] = ceil = ceilings(dev)
    print(f"ceilings: {ceil}", flush=True)
    _write(args.json, report)
    if "dense" not in skip:
        report["dense_gemv"] = bench_dense(dev)
        _write(args.json, report)
    if "quant" not in skip:
        report["split_k_overhead"] = split_k_overhead(dev)
        report["quant"] = bench_quant(dev, [int(m) for m in args.ms.split(",")])
    if "flash" not in skip:
        report["flash_prefill"] = bench_flash_prefill(
            dev, FLASH_SWEEP if args.sweep or args.flash_sweep else (flash_prefill.FlashConfig(),)
        )
        _write(args.json, report)
    if "prefill" not in skip:
        report["prefill"] = bench_prefill(dev, PREFILL_SWEEP if args.sweep else ((128, 128, 8, 3),))
    if "decode" not in skip:
        report["decode"] = bench_decode(dev, ceil["copy_GBps"], DECODE_SWEEP if args.sweep else ((64, 4, None),))
    if "fused" not in skip:
        report["fused"] = bench_fused(dev)
    _write(args.json, report)
    if args.sweep and "quant" not in skip:
        report["quant_sweep"] = sweep_quant(dev, args.sweep_budget, [int(m) for m in args.sweep_ms.split(",")])
        _write(args.json, report)
    print_table(report)


def _write(path: str, report: dict) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


# non-default paths the GPU checks cover too: split K with 16-bit dequantization, K-major GEMV shapes
CHECK_CONFIGS = (
    quant.MatmulConfig(16, 64, 256, 4, 4, 3, True),
    quant_gemv.GemvConfig(256, 8, 16, 4, 2, True),
    quant_gemv.GemvConfig(512, 16, 8, 8, 2, True),
    quant_gemv.GemvConfig(256, 8, 64, 4, 2, False),
    *(gemv_kmajor.KMajorGemvConfig(*c) for c in ((32, 1, 4, 4, 3), (8, 4, 2, 2, 2), (16, 8, 1, 8, 2))),
    *(quant_mma.MmaConfig(*c) for c in ((256, 8, 8, 1), (64, 16, 4, 2), (128, 4, 4, 3), (128, 1, 4, 1))),
)
PREFILL_SWEEP = (
    (128, 128, 8, 3),
    (128, 64, 4, 3),
    (128, 64, 4, 4),
    (128, 128, 8, 2),
    (128, 128, 8, 4),
    (128, 64, 8, 3),
    (256, 64, 8, 3),
    (64, 64, 4, 3),
)
DECODE_SWEEP = ((64, 4, None), (128, 4, None), (64, 2, None))
# contiguous prefill candidates, pointer loads then tensor-descriptor (TMA) loads; what earlier
# sweeps timed and dropped: benchmarks/results/gpu/kernels-h200-notes.md
FLASH_SWEEP = tuple(
    flash_prefill.FlashConfig(*c)
    for c in (
        (128, 128, 8, 3),
        (256, 64, 16, 3),
        (64, 64, 4, 3),
        (128, 128, 8, 3, True),
        (128, 64, 8, 3, True),
        (256, 64, 16, 3, True),
        (256, 128, 16, 2, True),
        (256, 64, 8, 3, True),
        (64, 64, 4, 4, True),
        (128, 32, 4, 4, True),
        (256, 128, 8, 2, True),
    )
)


PATHS = ("tensorcore", "gemv", "kmajor", "mma")  # the alternatives the table lists


def print_table(report: dict) -> None:
    """The short summary: each figure as ours / baseline and against the card's ceilings."""
    ceil = report["ceilings"]
    print(
        f"\n{report['card']}  copy {ceil['copy_GBps']:.0f} GB/s  "
        f"bf16 mm {ceil['bf16_matmul_TFLOPs']:.0f} TFLOP/s  "
        f"checks {'all ok' if all(c['ok'] is not False for c in report['checks']) else 'FAILED'}"
    )
    print(
        f"{'M':>5} {'N':>6} {'K':>6} {'cublas us':>10} {'w4 us':>8} {'w4 x':>6} {'w4 %bw':>7} {'w8 us':>8} {'w8 x':>6}"
    )
    for r in report.get("quant", []):
        print(
            f"{r['M']:>5} {r['N']:>6} {r['K']:>6} {r['cublas_bf16_ms'] * 1e3:>10.1f} "
            f"{r['w4a16_ms'] * 1e3:>8.1f} {r['w4a16_speedup']:>6.2f} "
            f"{100 * r['w4a16_GBps'] / ceil['copy_GBps']:>6.0f}% "
            f"{r['w8a16_ms'] * 1e3:>8.1f} {r['w8a16_speedup']:>6.2f}"
        )
    for r in report.get("quant", []):
        alts = {
            k: r["cublas_bf16_ms"] / v
            for k, v in r.items()
            if k.endswith("_ms") and k.count("_") == 2 and k.split("_")[1] in PATHS
        }
        print(f"M{r['M']} N{r['N']} K{r['K']} other paths: " + ", ".join(f"{k[:-3]} {v:.2f}x" for k, v in alts.items()))
    if "split_k_overhead" in report:
        extras = report["split_k_overhead"]
        print(
            f"split-K extras, N 4096: copy-out-and-clear {extras['copy_out_and_clear_ms'] * 1e3:.1f} us"
            f" (fill + copy: {extras['zero_and_copy_ms'] * 1e3:.1f} us)"
        )
    for r in report.get("quant_sweep", []):
        if r["best"]:
            b = r["best"][0]
            print(f"sweep {r['kernel']} M{r['M']} N{r['N']} K{r['K']}: {b['speedup']:.2f}x {b['config']}")
    for r in report.get("flash_prefill", []):
        if "ms" in r:
            print(
                f"flash kvh{r['kv_heads']} {r['config']}: {r['TFLOPs']:.0f} TFLOP/s = "
                f"{r['vs_sdpa']:.2f}x SDPA ({r['sdpa_TFLOPs']:.0f}), "
                f"{100 * r['TFLOPs'] / ceil['bf16_matmul_TFLOPs']:.0f}% of bf16 mm"
            )
    for r in report.get("prefill", []):
        print(
            f"prefill kvh{r['kv_heads']} bs{r['block_size']} {r['config']}: {r['TFLOPs']:.0f} "
            f"TFLOP/s = {r['vs_sdpa']:.2f}x SDPA ({r['sdpa_TFLOPs']:.0f}), "
            f"{100 * r['TFLOPs'] / ceil['bf16_matmul_TFLOPs']:.0f}% of bf16 mm"
        )
    for r in report.get("decode", []):
        print(f"decode 8k bs{r['block_size']} {r['config']}: {r['GBps']:.0f} GB/s = {r['pct_of_copy']:.0f}% of copy")
    for r in report.get("fused", []):
        print(
            f"{r['kernel']}: {r['speedup']:.2f}x torch, {r['GBps']:.0f} GB/s = "
            f"{100 * r['GBps'] / ceil['copy_GBps']:.0f}% of copy"
        )


if __name__ == "__main__":
    main()
