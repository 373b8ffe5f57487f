"""Targets for Nsight Compute: each batch-1 quantized matmul path once, at the Llama-8B shapes.

    ncu --clock-control none --profile-from-start off --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats \
        python3 -m vireo.tools.bench.gpu.ncu_gemv

Every path runs twice before the profiled region (Triton compiles, caches warm up); inside it
each runs once on a fresh weight (not in L2), so the counters describe one cold call, as in a
decode step. cuBLAS bf16 runs beside them as the baseline.
"""

from __future__ import annotations

import torch

from vireo.kernels import quant, quant_gemv, quant_mma
from vireo.kernels.gemv_layout import with_kmajor, with_mma
from vireo.kernels.qweight import quantize_int4, quantize_int8

SHAPES = [(4096, 4096), (14336, 4096)]


def paths(n: int, k: int):
    w = torch.randn(n, k, device="cuda") * 0.02
    int4 = with_mma(quantize_int4(w, 128).to(scale_dtype=torch.float16))
    int8 = with_kmajor(quantize_int8(w))
    dense = w.to(torch.bfloat16)
    dev = w.device
    yield "cublas", lambda x: torch.nn.functional.linear(x, dense)
    yield "w4_gemv", lambda x: quant.w4a16_matmul(x, int4, config=quant_gemv.pick_gemv_config(n, k, 128, dev))
    yield "w4_mma", lambda x: quant.w4a16_matmul(x, int4, config=quant_mma.pick_mma_config(n, k, 128, dev))
    yield "w8_default", lambda x: quant.w8a16_matmul(x, int8)


def main() -> None:
    runs = []
    for n, k in SHAPES:
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        for name, fn in paths(n, k):
            fn(x), fn(x)
            runs.append((f"{name} {n}x{k}", fn, x))
    flush = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    for label, fn, x in runs:
        flush.zero_()  # evicts the weight from L2
        torch.cuda.synchronize()
        print(f"== {label}", flush=True)
        torch.cuda.profiler.start()
        fn(x)
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()
