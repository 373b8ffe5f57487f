"""Targets for Nsight Compute: the fresh-prompt flash prefill (TMA default) and torch SDPA once each,
causal, B4 H32 S4096 D128 bf16 (the kernel benchmark's shape).

    ncu --clock-control none --profile-from-start off --section SpeedOfLight \
        --section ComputeWorkloadAnalysis --section Occupancy --section WarpStateStats \
        python3 -m vireo.tools.bench.gpu.ncu_prefill
"""

from __future__ import annotations

import torch

from vireo.kernels.flash_prefill import flash_prefill


def main(b: int = 4, h: int = 32, s: int = 4096, d: int = 128) -> None:
    q = torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16)
    k, v = torch.randn_like(q), torch.randn_like(q)
    qp, kp, vp = (t.transpose(1, 2).reshape(b * s, h, d).contiguous() for t in (q, k, v))
    cu = torch.arange(0, b * s + 1, s, device="cuda", dtype=torch.int32)
    runs = [
        ("flash_prefill (TMA)", lambda: flash_prefill(qp, kp, vp, cu, s)),
        ("torch SDPA", lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)),
    ]
    for _, fn in runs:
        fn(), fn()
    torch.cuda.synchronize()
    for label, fn in runs:
        print(f"== {label}", flush=True)
        torch.cuda.profiler.start()
        fn()
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()


if __name__ == "__main__":
    main()
