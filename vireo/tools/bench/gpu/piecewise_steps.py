"""Prefill and mixed steps of a Llama-8B shape, eager against piecewise CUDA graphs (issue #16).

The eager step is host-bound on an H100 (a 128-token prefill: ~24 ms queueing launches, 0.3 ms waiting for the
card; prefill-steps-h100-2026-12-07.json). This times the model's forward alone for each step, both ways, on one
engine's runner and cache: the host's time to queue it (until the call returns) and the whole step (until the
card is done), medians over repeats, and the largest difference between the two outputs. It also reports the
engine's start time (the model built and the pieces captured together), how many graphs were captured, and the
memory the CUDA allocator held after the start (allocated, and reserved beyond that: the graphs' pool and the
allocator's cache together).

    python3 -m vireo.tools.bench.gpu.piecewise_steps --json /tmp/out/piecewise-steps.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vireo.inference.engine_config import EngineConfig
from vireo.inference.registry import ModelRegistry

# (start, rows) per sequence: one prompt of 16..2048 tokens; 32 decodes beside a 128-token prompt
STEPS = {
    "prefill 16": ((0, 16),),
    "prefill 128": ((0, 128),),
    "prefill 512": ((0, 512),),
    "prefill 2048": ((0, 2048),),
    "32 decodes + prefill 128": (*((64, 1) for _ in range(32)), (0, 128)),
}


def timed(fn, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Median host ms (the call returning) and whole-step ms (the card done), and the last output (a copy)."""
    host, whole = [], []
    out = fn()
    for _ in range(repeats):
        torch.cuda.synchronize()
        began = time.perf_counter()
        out = fn()
        queued = time.perf_counter()
        torch.cuda.synchronize()
        done = time.perf_counter()
        host.append((queued - began) * 1000)
        whole.append((done - began) * 1000)
    return statistics.median(host), statistics.median(whole), out.clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="random:llama-8b")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--commit", default="", help="the code's commit (the device copy's git log is stale)")
    args = parser.parse_args()
    from vireo.inference.native.engine import NativeEngine

    home = Path(tempfile.mkdtemp())
    config = EngineConfig(model=args.model, device="cuda", dtype="bfloat16", max_batch=64, home=home)
    path = ModelRegistry(home).resolve(args.model).path
    before = torch.cuda.memory_allocated()
    began = time.perf_counter()
    engine = NativeEngine(config.model_copy(update={"piecewise_graphs": True}), path, args.model)
    start_s = time.perf_counter() - began
    runner = engine.runner
    graphs = runner.step_graphs
    assert graphs is not None and graphs.graphs, "piecewise graphs were not captured at start"
    reserved_not_allocated_mb = (torch.cuda.memory_reserved() - torch.cuda.memory_allocated()) / 2**20
    report: dict = {
        "benchmark": "piecewise_steps",
        "card": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "commit": args.commit,
        "model": args.model,
        "engine_start_s_with_capture": round(start_s, 1),
        "sizes_captured": graphs.sizes,
        "graphs_captured": sum(len(g) for g in graphs.graphs.values()),
        "memory_allocated_mb_after_start": round((torch.cuda.memory_allocated() - before) / 2**20),
        "memory_reserved_not_allocated_mb": round(reserved_not_allocated_mb),
        "repeats": args.repeats,
        "steps": {},
    }
    print(f"card {report['card']}; engine start with capture {start_s:.1f} s; {report['graphs_captured']} graphs")
    print(
        f"{'step':>26} {'eager host':>10} {'eager step':>10} {'pieces host':>11} {'pieces step':>11} {'max|diff|':>9}"
    )
    with torch.inference_mode():
        for name, step in STEPS.items():
            plan = runner.warm_up_plan(step)
            if plan is None:
                print(f"{name:>26}: too few cache blocks")
                continue
            inputs = runner.inputs(plan)
            ids, pos, meta = inputs.input_ids, inputs.positions, inputs.meta
            assert graphs.accepts(ids.shape[0], meta)
            eager = timed(lambda: runner.model.forward(ids, pos, meta, runner.kv_caches), args.repeats)
            pieces = timed(lambda: graphs.run(ids, pos, meta), args.repeats)
            diff = (eager[2].float() - pieces[2].float()).abs()
            scale = eager[2].float().abs().max().item()
            row = {
                "tokens": int(ids.shape[0]),
                "padded_to": graphs.size_for(int(ids.shape[0])),
                "eager_host_ms": round(eager[0], 2),
                "eager_step_ms": round(eager[1], 2),
                "piecewise_host_ms": round(pieces[0], 2),
                "piecewise_step_ms": round(pieces[1], 2),
                "eager_over_piecewise_step": round(eager[1] / pieces[1], 2),
                "max_abs_diff": round(diff.max().item(), 4),
                "max_abs_diff_over_max_abs": round(diff.max().item() / scale, 5),
            }
            report["steps"][name] = row
            print(
                f"{name:>26} {row['eager_host_ms']:>10} {row['eager_step_ms']:>10} {row['piecewise_host_ms']:>11} "
                f"{row['piecewise_step_ms']:>11} {row['max_abs_diff']:>9}",
                flush=True,
            )
    engine.loop.stop()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
