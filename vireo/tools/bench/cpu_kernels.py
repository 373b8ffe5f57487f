"""CPU benchmark of the quantized linears, side by side in one process: our AVX2 int8-activation
kernels (int4 group 32, int8 per channel) against PyTorch's weight-only int4 / int8 kernels and the
float32 linear the engine runs unquantized.

    python -m vireo.tools.bench.cpu_kernels --json benchmarks/results/cpu-kernels.json

Each shape is a projection of a model we serve on CPUs; each M a decode batch. The contenders of one
(shape, M) are timed interleaved, round after round, and each reports its median, so a drift of the
machine's speed touches all of them alike. Correctness is checked first against float64.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from vireo.kernels import cpu_extensions, cpu_int8dot
from vireo.kernels.cpu_quant import CpuInt4DotWeight, CpuInt8Weight, Int4Grid, quantize_int8_rows
from vireo.kernels.cpu_quant import pack_int4 as pack_best_int4
from vireo.tools.machine import machine_info, source_commit

# (model, projection, N, K)
SHAPES = [
    ("SmolLM2-135M", "qkv", 960, 576),
    ("SmolLM2-135M", "gate_up", 3072, 576),
    ("SmolLM2-135M", "down", 576, 1536),
    ("SmolLM2-135M", "lm_head", 49152, 576),
    ("Qwen2.5-0.5B", "gate_up", 9728, 896),
    ("Qwen2.5-0.5B", "down", 896, 4864),
    ("Qwen2.5-1.5B", "gate_up", 17920, 1536),
    ("Qwen2.5-1.5B", "down", 1536, 8960),
]
MS = [1, 2, 4, 8, 16]


def torch_int4(grid: Int4Grid):
    """PyTorch's int4 kernel's form of the grid."""
    with cpu_extensions.turned_off():
        return pack_best_int4(grid)


def torch_int8(w: CpuInt8Weight) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        out = torch.ops.aten._weight_int8pack_mm(x.to(torch.bfloat16).contiguous(), w.qweight, w.scales)
        return out.float()

    return run


def contenders(n: int, k: int, seed: int) -> tuple[dict[str, Callable[[torch.Tensor], torch.Tensor]], torch.Tensor]:
    """Each way to compute x @ W.T for one random weight (int4 values, Q4_1-like scales), and the float weight."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    scale = torch.rand(n, k // 32, generator=g) * 0.02 + 1e-3
    minimum = -(torch.rand(n, k // 32, generator=g) * 8 + 4) * scale
    grid = Int4Grid(q, scale, minimum, 32)
    dense = grid.dequantize()
    int8 = quantize_int8_rows(dense)
    ours4 = CpuInt4DotWeight.from_grid(grid)
    theirs4 = torch_int4(grid)
    return {
        "float32": lambda x: F.linear(x, dense),
        "torch_int4": theirs4.matmul,
        "torch_int8": torch_int8(int8),
        "ours_int4": lambda x: cpu_int8dot.int4_mm(x, ours4.packed, ours4.scale, ours4.minimum),
        "ours_int8": lambda x: cpu_int8dot.int8_mm(x, int8.qweight, int8.scales),
    }, dense


def check(fns: dict[str, Callable], dense: torch.Tensor, k: int) -> dict[str, float]:
    """Relative error of each contender against float64 at M = 4 (int8 activations: about 1 %)."""
    x = torch.randn(4, k, generator=torch.Generator().manual_seed(1))
    ref = x.double() @ dense.double().t()
    errors = {}
    for name, fn in fns.items():
        errors[name] = ((fn(x).double() - ref).norm() / ref.norm()).item()
        if errors[name] > 0.03:
            raise AssertionError(f"{name} is off by {errors[name]:.3%}")
    return errors


def timed(fns: dict[str, Callable], x: torch.Tensor, rounds: int, min_s: float) -> dict[str, float]:
    """Median milliseconds per call of each, interleaved: each round times every contender once over
    enough calls to last `min_s`."""
    calls = {}
    for name, fn in fns.items():  # warm up, and size each one's batch of calls
        fn(x)
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < min_s:
            fn(x)
            count += 1
        calls[name] = max(count, 1)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn(x)
            samples[name].append((time.perf_counter() - start) * 1e3 / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def write_result(path: Path | None, benchmark: str, what: str, rows: list[dict]) -> None:
    """A kernel benchmark's rows with the date, commit, machine and thread count, as JSON at `path`."""
    if path is None:
        return
    result = {
        "benchmark": benchmark,
        "what": what,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": source_commit(),
        "machine": machine_info(),
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-s", type=float, default=0.05, help="seconds of calls per contender per round")
    parser.add_argument("--ms", type=int, nargs="+", default=MS)
    args = parser.parse_args(argv)
    if cpu_int8dot.load_kernel() is None:
        raise SystemExit("our AVX2 kernel is not available here: nothing to compare")
    rows = []
    for model, projection, n, k in SHAPES:
        fns, dense = contenders(n, k, seed=n + k)
        errors = check(fns, dense, k)
        for m in args.ms:
            x = torch.randn(m, k)
            ms = timed(fns, x, args.rounds, args.min_s)
            row = {"model": model, "projection": projection, "n": n, "k": k, "m": m, "median_ms": ms}
            row["speed_vs_float32"] = {name: ms["float32"] / t for name, t in ms.items() if name != "float32"}
            row["ours_int4_vs_torch_int4"] = ms["torch_int4"] / ms["ours_int4"]
            row["ours_int8_vs_torch_int8"] = ms["torch_int8"] / ms["ours_int8"]
            row["relative_error_m4"] = errors
            rows.append(row)
            print(
                f"{model:14} {projection:8} M={m:<3} f32 {ms['float32']:.3f} ms | int4 torch "
                f"{ms['torch_int4']:.3f} ours {ms['ours_int4']:.3f} ({row['ours_int4_vs_torch_int4']:.2f}x) | "
                f"int8 torch {ms['torch_int8']:.3f} ours {ms['ours_int8']:.3f} ({row['ours_int8_vs_torch_int8']:.2f}x)",
                flush=True,
            )
    write_result(
        args.json,
        "cpu_kernels",
        "x @ W.T per call: our AVX2 int8-activation kernels vs PyTorch's int4/int8 weight-only kernels "
        "and the float32 linear; medians of interleaved rounds; ratios > 1: ours (or the quantized one) faster",
        rows,
    )


if __name__ == "__main__":
    main()
