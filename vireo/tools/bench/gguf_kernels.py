"""CPU benchmark of a GGUF file's matrices in the forms the engine can hold them, side by side in one
process: the file's own blocks on our `cpu_gguf_dot` kernel in the layout the engine holds them in
(`gguf_blocks`: sixteen rows interleaved where the rows come in sixteens), in the file's layout
(`file_layout`) and, for the K-quants, regrouped row by row (`regrouped_rows`, the engine's layout before
the interleaved ones), against the forms used before any of them (Q4 types as int4 group 32 on
`cpu_int8dot`, the other types re-quantized to int8 rows), timed interleaved per (tensor, M) as
`cpu_kernels` times its contenders, medians reported. At prefill sizes (M >= 64) every form but the
interleaved one multiplies de-quantized slices (`CpuGgufWeight.dense_from_rows`), as the engine does.
Q5_0 matrices are also timed as the Q8_0 blocks they become where Q5_0 is not served as its own (`as_q8_0`:
`gguf_weights.blocks_served`), in the same layout.

    python -m vireo.tools.bench.gguf_kernels --models qwen2.5-coder-0.5b --json benchmarks/results/gguf-kernels.json

One tensor per (block type, shape) of each model's file: its decode matmuls as the engine runs them.
`--whole-model` instead times, for the types a CPU may serve in two forms (Q4_1: its blocks or the int4 form;
Q5_0: its blocks or Q8_0 blocks), every matrix of that type called in turn as a decode step calls them: what
the model streams from memory, where one matrix alone may sit in cache.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from vireo.inference.model_config import read_model_config
from vireo.inference.quant.gguf_weights import Q4_TYPES, GgufWeights, gguf_source, int8_rows, q4_grid, q5_0_as_q8_0
from vireo.inference.registry import ModelRegistry
from vireo.kernels import cpu_gguf_dot
from vireo.kernels.cpu_quant import CpuGgufWeight, CpuWeight, pack_int4
from vireo.tools.bench.cpu_kernels import timed, write_result

MS = [1, 4, 8, 64, 256]


def representative_tensors(weights: GgufWeights) -> dict[tuple[str, int, int], str]:
    """One HF name per (block type, N, K) among the file's quantized matrices."""
    chosen: dict[tuple[str, int, int], str] = {}
    for name, info in weights.tensors.items():
        if len(info.shape) == 2 and info.type.name in cpu_gguf_dot.BLOCK_TYPES and name != "model.embed_tokens.weight":
            chosen.setdefault((info.type.name, info.rows, info.shape[0]), name)
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-s", type=float, default=0.05)
    parser.add_argument("--whole-model", action="store_true", help="each two-form type's matrices all in turn")
    parser.add_argument(
        "--avx2-only", action="store_true", help="our kernel's AVX2 bodies even where the CPU has VNNI (AVX2-only CPUs)"
    )
    args = parser.parse_args(argv)
    if cpu_gguf_dot.load_kernel() is None:
        raise SystemExit("our AVX2 kernel is not available here: nothing to compare")
    with cpu_gguf_dot.avx2_only() if args.avx2_only else contextlib.nullcontext():
        rows = measure_whole_models(args) if args.whole_model else measure(args)
    if args.whole_model:
        what = (
            "x @ W.T for every matrix of a type in turn (a decode step's calls of that type) per pass, the file's "
            "blocks in the engine's layout (gguf_blocks) vs the other form this type may be served in (Q4_1: int4 "
            "group 32 on cpu_int8dot; Q5_0: Q8_0 blocks in the engine's layout); medians of interleaved rounds"
        )
        write_result(
            args.json, "gguf_kernels_whole_model", what + (" (AVX2 bodies only)" if args.avx2_only else ""), rows
        )
        return
    write_result(
        args.json,
        "gguf_kernels",
        "x @ W.T per call for a GGUF file's matrices: the file's blocks on cpu_gguf_dot in the engine's layout "
        "(gguf_blocks) vs the forms used before it (before), the file's own layout (file_layout) and the K-quants "
        "regrouped row by row (regrouped_rows), Q5_0 also as Q8_0 blocks (as_q8_0); M >= 64: all but the interleaved "
        "layouts take de-quantized slices; medians of interleaved rounds; *_speedup > 1: the engine's layout faster"
        + ("; our kernel on its AVX2 bodies only (--avx2-only)" if args.avx2_only else ""),
        rows,
    )


def gguf_weights_of(models: list[str]) -> Iterator[tuple[str, GgufWeights]]:
    """Each model's GGUF file, read as the engine reads it (models without one are skipped, said so)."""
    for model in models:
        folder = ModelRegistry().resolve(model).path
        source = gguf_source(folder)
        if source is None:
            print(f"{model}: no GGUF file, skipped")
            continue
        yield model, GgufWeights(source, read_model_config(folder), torch.float32)


def measure(args: argparse.Namespace) -> list[dict]:
    """One row per (model, tensor, M)."""
    rows = []
    for model, weights in gguf_weights_of(args.models):
        for (block_type, n, k), name in representative_tensors(weights).items():
            raw = weights.raw(name)
            file_blocks = CpuGgufWeight(torch.from_numpy(np.ascontiguousarray(raw)), block_type, k)
            blocks = CpuGgufWeight.from_file(file_blocks.blocks, block_type, k)  # as the engine holds them
            before: CpuWeight
            if block_type in Q4_TYPES:
                before = pack_int4(q4_grid(raw, block_type))
            else:
                before = int8_rows(raw, weights.tensors[name].type)
            fns = {"gguf_blocks": blocks.matmul, "before": before.matmul}
            if blocks.block_type != block_type:
                fns["file_layout"] = file_blocks.matmul
            previous = "file_layout"
            if block_type in cpu_gguf_dot.REGROUPED and blocks.block_type != cpu_gguf_dot.REGROUPED[block_type]:
                layout = cpu_gguf_dot.REGROUPED[block_type]
                regrouped = CpuGgufWeight(cpu_gguf_dot.relayout(file_blocks.blocks, block_type, layout, k), layout, k)
                fns["regrouped_rows"], previous = regrouped.matmul, "regrouped_rows"
            if block_type == "Q5_0":
                as_q8_0 = CpuGgufWeight.from_file(torch.from_numpy(q5_0_as_q8_0(raw)), "Q8_0", k)
                fns["as_q8_0"] = as_q8_0.matmul
            for m in MS:
                ms = timed(fns, torch.randn(m, k), args.rounds, args.min_s)
                row = {
                    "model": model,
                    "tensor": name,
                    "block_type": block_type,
                    "n": n,
                    "k": k,
                    "m": m,
                    "layout": blocks.block_type,
                    "before_form": type(before).__name__,
                    "median_ms": ms,
                    "blocks_speedup": round(ms["before"] / ms["gguf_blocks"], 3),
                    "bytes": {"gguf_blocks": blocks.nbytes(), "before": before.nbytes()},
                }
                for other in {previous, "as_q8_0"} & ms.keys():
                    row["speedup_over_" + other] = round(ms[other] / ms["gguf_blocks"], 3)
                rows.append(row)
                print(
                    f"{model:20} {block_type:5} {n:>6}x{k:<5} M={m}: {blocks.block_type} {ms['gguf_blocks']:.3f} ms, "
                    + ", ".join(f"{key} {ms[key]:.3f} ms" for key in fns if key != "gguf_blocks"),
                    flush=True,
                )
    return rows


def measure_whole_models(args: argparse.Namespace) -> list[dict]:
    """One row per (model, two-form block type, M): every matrix of the type called in turn."""
    rows = []
    for model, weights in gguf_weights_of(args.models):
        for block_type in ("Q4_1", "Q5_0"):
            names = [
                name
                for name, info in weights.tensors.items()
                if info.type.name == block_type and len(info.shape) == 2 and ".layers." in name
            ]
            if not names:
                continue
            by_k: dict[int, tuple[list[CpuWeight], list[CpuWeight]]] = {}
            for name in names:
                raw, k = weights.raw(name), weights.tensors[name].shape[0]
                own = CpuGgufWeight.from_file(torch.from_numpy(np.ascontiguousarray(raw)), block_type, k)
                other: CpuWeight = (
                    pack_int4(q4_grid(raw, block_type))
                    if block_type == "Q4_1"
                    else CpuGgufWeight.from_file(torch.from_numpy(q5_0_as_q8_0(raw)), "Q8_0", k)
                )
                by_k.setdefault(k, ([], []))
                by_k[k][0].append(own)
                by_k[k][1].append(other)
            other_name = "int4" if block_type == "Q4_1" else "as_q8_0"
            for m in MS[:3]:
                xs = {k: torch.randn(m, k) for k in by_k}

                def each(which: int) -> Callable[[torch.Tensor], None]:
                    def run(_: torch.Tensor) -> None:
                        for k, forms in by_k.items():
                            for w in forms[which]:
                                w.matmul(xs[k])

                    return run

                ms = timed({"gguf_blocks": each(0), other_name: each(1)}, xs[next(iter(xs))], args.rounds, args.min_s)
                row = {
                    "model": model,
                    "block_type": block_type,
                    "matrices": len(names),
                    "m": m,
                    "median_ms": ms,
                    "speedup_over_" + other_name: round(ms[other_name] / ms["gguf_blocks"], 3),
                    "bytes": {
                        "gguf_blocks": sum(w.nbytes() for forms in by_k.values() for w in forms[0]),
                        other_name: sum(w.nbytes() for forms in by_k.values() for w in forms[1]),
                    },
                }
                rows.append(row)
                print(
                    f"{model:20} {block_type:5} x{len(names)} M={m}: blocks {ms['gguf_blocks']:.3f} ms, "
                    f"{other_name} {ms[other_name]:.3f} ms ({row['speedup_over_' + other_name]}x)",
                    flush=True,
                )
    return rows


if __name__ == "__main__":
    main()
