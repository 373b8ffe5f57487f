"""`vireo bench engines --random-weights llama-8b`: our native engine against HF `generate` on one
GPU, same random weights, same run.

The model has the real architecture's shape with random bf16 weights made on the card
(`random_weights.py`), so no checkpoint has to reach the machine. Each batch size gets distinct
random prompts of `prompt_tokens` tokens and makes exactly `new_tokens` greedy tokens
(no EOS exists). Timed per batch size, after a warm-up: the native engine through the Engine
API (CUDA graphs, Triton kernels; `bench.run_level`), HF `generate` with its dynamic cache, and
HF `generate(cache_implementation="static")` (which compiles itself on the first call). tok/s and
ms/step count the whole request, prefill included, for every engine alike. Before timing, a tiny
float32 model checks the CUDA path against the CPU torch path and against HF.

    python3 -m vireo.tools.bench.engines_gpu --shape llama-8b --json $OUT/engines.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from vireo.inference.api import GenerationRequest, SamplingParams
from vireo.inference.local import EngineConfig
from vireo.tools.bench.engines import run_level
from vireo.tools.bench.random_weights import (
    llama_config,
    native_model,
    prompt_text,
    random_hf_model,
    random_prompts,
    write_model_folder,
)
from vireo.tools.machine import machine_info, source_commit

TINY: dict[str, Any] = dict(
    hidden_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=512,
    vocab_size=1024,
    tie_word_embeddings=True,
    initializer_range=0.1,
)  # larger than real init: varied greedy text, fewer near-ties


def gpu_info() -> dict:
    return {
        **machine_info(packages=("torch", "triton", "transformers"), gpu=True),
        "commit": source_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def copy_bandwidth(megabytes: int = 1024) -> float:
    """Device-to-device copy rate in bytes/s (read + write), median of 10 copies."""
    src = torch.empty(megabytes * 2**20, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    times = []
    for _ in range(12):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return 2 * src.numel() / sorted(times[2:])[len(times[2:]) // 2]


def tokens_of(text: str) -> list[int]:
    """Token ids back from the synthetic tokenizer's text ("t12 t7 ...")."""
    return [int(word[1:]) for word in text.split()]


def matching_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# --- engines ---------------------------------------------------------------------------------
def make_engine(
    folder: Path,
    model,
    device: str,
    max_batch: int,
    context: int,
    graphs: bool = True,
    overlap: bool | None = None,
    piecewise: bool = True,
    speculation: str = "off",
):
    from vireo.inference.native.engine import NativeEngine

    config = EngineConfig(
        device=device,
        dtype=str(model.dtype).removeprefix("torch."),
        max_batch=max_batch,
        max_model_len=context,
        speculation=speculation,
        kv_cache_tokens=max_batch * context,
        cuda_graphs=graphs,
        overlap_decode=overlap,
        piecewise_graphs=piecewise,
    )
    return NativeEngine(config, folder, "random", model=model)


async def native_greedy(engine, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
    sampling = SamplingParams(max_tokens=new_tokens, ignore_eos=True)
    done = await asyncio.gather(
        *(engine.complete(GenerationRequest(prompt=prompt_text(p), sampling=sampling)) for p in prompts)
    )
    return [tokens_of(d.text) for d in done]


def hf_greedy(hf, prompts: list[list[int]], new_tokens: int, static: bool = False) -> torch.Tensor:
    ids = torch.tensor(prompts, device="cuda")
    extra = {"cache_implementation": "static"} if static else {}
    out = hf.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        **extra,
    )
    return out[:, ids.shape[1] :]


# --- correctness -----------------------------------------------------------------------------
def check_tiny_model(folder: Path, new_tokens: int = 24) -> dict:
    """Greedy tokens of the CUDA path (graphs on and off) vs the CPU torch path vs HF, float32."""
    hf = random_hf_model(llama_config(TINY, max_positions=512), torch.float32, "cuda", seed=7)
    prompts = random_prompts(4, 40, TINY["vocab_size"], seed=7)
    results = {}
    for name, device, graphs in (
        ("cuda_graphs", "cuda", True),
        ("cuda_eager", "cuda", False),
        ("cpu_reference", "cpu", False),
    ):
        model = native_model(hf.to(device), torch.float32, batch_hint=4)
        engine = make_engine(folder, model, device, 4, 128, graphs)
        results[name] = asyncio.run(_complete_and_stop(engine, prompts, new_tokens))
    hf.to("cuda")
    with torch.inference_mode():
        results["hf"] = hf_greedy(hf, prompts, new_tokens).tolist()
        ids = torch.tensor(prompts, device="cuda")
        ref_logits = hf(ids).logits.float()
        ours = native_model(hf, torch.float32, 4)
        from vireo.inference.native.worker.model_runner import ModelRunner

        our_logits = ModelRunner(ours, 64, 16, "cuda").forward_logits(ids)
    rel = ((our_logits - ref_logits).norm() / ref_logits.norm()).item()
    same = {name: sum(a == b for a, b in zip(toks, results["cpu_reference"])) for name, toks in results.items()}
    return {
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "greedy_identical_to_cpu_reference": same,
        "greedy_identical_cpu_reference_vs_hf": sum(a == b for a, b in zip(results["cpu_reference"], results["hf"])),
        "prefill_logits_rel_error_vs_hf": rel,
    }


async def _complete_and_stop(engine, prompts, new_tokens):
    try:
        return await native_greedy(engine, prompts, new_tokens)
    finally:
        await engine.shutdown()


# --- timing ----------------------------------------------------------------------------------
async def time_native(engine, workload: dict[int, list[list[int]]], new_tokens: int) -> dict:
    """Per batch size: a warm-up round (compiles kernels, captures graphs), then the timed one."""
    levels = {}
    for batch, prompts in workload.items():
        warm = random_prompts(batch, len(prompts[0]), engine.model.shape.vocab, seed=1000 + batch)
        await native_greedy(engine, warm, 8)
        texts = [prompt_text(p) for p in prompts]
        summary, outputs = await run_level(engine, texts, new_tokens, batch)
        summary["ms_per_step"] = round(1000 * summary["wall_s"] / new_tokens, 3)
        summary["first_output_tokens"] = tokens_of(outputs[0])[:32]
        levels[batch] = summary
    return levels


def time_hf(hf, workload: dict[int, list[list[int]]], new_tokens: int, static: bool) -> dict:
    levels = {}
    for batch, prompts in workload.items():
        began = time.perf_counter()
        hf_greedy(hf, prompts, new_tokens if static else 8, static)  # static: same shapes, compiles
        warm_s = time.perf_counter() - began
        torch.cuda.synchronize()
        began = time.perf_counter()
        out = hf_greedy(hf, prompts, new_tokens, static)
        torch.cuda.synchronize()
        wall = time.perf_counter() - began
        levels[batch] = {
            "wall_s": round(wall, 3),
            "warmup_s": round(warm_s, 1),
            "output_tokens_per_s": round(out.numel() / wall, 2),
            "ms_per_step": round(1000 * wall / new_tokens, 3),
            "first_output_tokens": out[0, :32].tolist(),
        }
    return levels


def weight_bytes(model) -> int:
    """Bytes a decode step reads: every decoder linear, norms and the LM head (not the embedding)."""
    from vireo.inference.quant.linear import QuantizedLinear

    dense = torch.empty(0, dtype=model.dtype).element_size()
    total = model.lm_head.out_features * model.lm_head.in_features * dense
    for layer in model.layers:
        for linear in (layer.qkv, layer.o, layer.gate_up, layer.down):
            if isinstance(linear, QuantizedLinear):
                total += linear.weight_nbytes()
            else:
                total += linear.out_features * linear.in_features * dense
    return total


def run_gpu_engine_benchmark(
    shape: str = "llama-8b",
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    prompt_tokens: int = 128,
    new_tokens: int = 128,
    static_batch_sizes: tuple[int, ...] = (1, 32),
    int4: bool = True,
    check: bool = True,
    profile: bool = False,
    int4_batch_sizes: tuple[int, ...] = (1,),
) -> dict:
    """The report: machine, checks, and per engine and batch size tok/s, ms/step and ratios."""
    report: dict[str, Any] = {
        "benchmark": "engines-gpu",
        "machine": gpu_info(),
        "shape": shape,
        "dtype": "bfloat16",
        "workload": {
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "batch_sizes": list(batch_sizes),
            "sampling": "greedy, no EOS",
            "prompts": "distinct random token ids per request",
        },
    }
    report["machine"]["copy_bandwidth_tb_s"] = round(copy_bandwidth() / 1e12, 3)
    folder = Path(tempfile.mkdtemp())
    if check:
        write_model_folder(llama_config(TINY), folder / "tiny")
        report["checks"] = check_tiny_model(folder / "tiny")
        print(json.dumps(report["checks"]), flush=True)
    config = llama_config(shape, max_positions=4096)
    write_model_folder(config, folder / shape)
    workload = {b: random_prompts(b, prompt_tokens, config.vocab_size, seed=b) for b in batch_sizes}
    context = prompt_tokens + new_tokens + 16
    hf = random_hf_model(config, torch.bfloat16, "cuda")
    engines = {}
    bs1 = {b: p for b, p in workload.items() if b == min(batch_sizes)}
    with torch.inference_mode():
        engines["native"] = _native_levels(
            hf, folder / shape, workload, new_tokens, context, None, report, profile=profile
        )
        # the same engine with every decode step waiting for its tokens before the next launch
        engines["native_serial"] = _native_levels(
            hf, folder / shape, bs1, new_tokens, context, None, report, overlap=False
        )
        engines["hf"] = time_hf(hf, workload, new_tokens, static=False)
        print(json.dumps({"hf": engines["hf"]}), flush=True)
        static_load = {b: p for b, p in workload.items() if b in static_batch_sizes}
        engines["hf_static"] = _guarded(lambda: time_hf(hf, static_load, new_tokens, static=True))
        if int4:
            int4_load = {b: p for b, p in workload.items() if b in int4_batch_sizes}
            engines["native_int4"] = _guarded(
                lambda: _native_levels(hf, folder / shape, int4_load, new_tokens, context, 4, report, profile=profile)
            )
            engines["native_int4_serial"] = _guarded(
                lambda: _native_levels(hf, folder / shape, bs1, new_tokens, context, 4, report, overlap=False)
            )
    report["engines"] = engines
    report["ratios"] = ratios(engines)
    return report


def _native_levels(hf, folder, workload, new_tokens, context, bits, report, overlap=None, profile=False) -> dict:
    model = native_model(hf, torch.bfloat16, max(workload), quantize_bits=bits)
    key = ("native_int4" if bits else "native") + ("_serial" if overlap is False else "")
    report.setdefault("weight_bytes_per_step", {})[key] = weight_bytes(model)
    engine = make_engine(folder, model, "cuda", max(workload), context, overlap=overlap)
    try:
        levels = asyncio.run(_time_and_stop(engine, workload, new_tokens, profile))
        if profile:
            report.setdefault("profiles", {})[key] = levels.pop("profile")
    finally:
        del engine, model
        gc.collect()
        torch.cuda.empty_cache()
    bandwidth = report["machine"]["copy_bandwidth_tb_s"] * 1e12
    for batch, level in levels.items():
        step_s = level["itl_p50_s"] or level["wall_s"] / new_tokens
        level["pct_of_copy_bandwidth"] = round(100 * report["weight_bytes_per_step"][key] / step_s / bandwidth, 1)
    print(json.dumps({key: levels}), flush=True)
    return levels


async def _time_and_stop(engine, workload, new_tokens, profile=False):
    try:
        levels = await time_native(engine, workload, new_tokens)
        if profile:
            levels["profile"] = await profile_decode(engine, next(iter(workload.values()))[:1])
        return levels
    finally:
        await engine.shutdown()


async def profile_decode(engine, prompts: list[list[int]], new_tokens: int = 32) -> dict:
    """Where a batch-1 request's time goes on the GPU (torch profiler, CUPTI kernel records):
    the GPU-busy share of the wall time and the kernels that take most of it."""
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            began = time.perf_counter()
            await native_greedy(engine, prompts, new_tokens)
            wall = time.perf_counter() - began
        kernels: dict[str, list[float]] = {}
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                entry = kernels.setdefault(event.name[:90], [0, 0.0])
                entry[0] += 1
                entry[1] += event.device_time / 1e6  # us -> s
        busy = sum(total for _, total in kernels.values())
        top = sorted(kernels.items(), key=lambda kv: -kv[1][1])[:15]
        return {
            "new_tokens": new_tokens,
            "wall_s": round(wall, 4),
            "gpu_kernel_s": round(busy, 4),
            "gpu_busy_share": round(busy / wall, 3),
            "top_kernels": [
                {"name": name, "calls": calls, "total_ms": round(1000 * total, 3)} for name, (calls, total) in top
            ],
        }
    except Exception as exc:  # noqa: BLE001 - a profiler that does not work here is reported
        return {"failed": f"{type(exc).__name__}: {exc}"[:300]}


def _guarded(run):
    """A baseline or variant that fails is reported, not hidden."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001
        return {"failed": f"{type(exc).__name__}: {exc}"[:500]}


def ratios(engines: dict) -> dict:
    """ours / baseline tok/s per batch size, for every (native variant, HF variant) pair."""
    out = {}
    for ours, serial in (("native", "native_serial"), ("native_int4", "native_int4_serial")):
        for batch in engines.get(serial, {}):
            a, b = engines.get(ours, {}).get(batch), engines[serial][batch]
            if isinstance(a, dict) and isinstance(b, dict) and "output_tokens_per_s" in b:
                out[f"{ours}/{serial} bs{batch}"] = round(a["output_tokens_per_s"] / b["output_tokens_per_s"], 2)
    for ours in ("native", "native_int4", "native_serial", "native_int4_serial"):
        for base in ("hf", "hf_static"):
            a, b = engines.get(ours, {}), engines.get(base, {})
            for batch in a:
                if batch in b and isinstance(b[batch], dict) and "output_tokens_per_s" in b[batch]:
                    out[f"{ours}/{base} bs{batch}"] = round(
                        a[batch]["output_tokens_per_s"] / b[batch]["output_tokens_per_s"], 2
                    )
    return out


def short_table(report: dict) -> str:
    rows = [
        f"{report['machine']['card']} | {report['shape']} bf16 | prompt {report['workload']['prompt_tokens']}"
        f" + {report['workload']['new_tokens']} new",
        "engine       | bs | tok/s     | ms/step | % copy BW",
    ]
    for name, levels in report["engines"].items():
        if "failed" in levels:
            rows.append(f"{name:12} | failed: {levels['failed'][:80]}")
            continue
        for batch, lvl in levels.items():
            rows.append(
                f"{name:12} | {batch:2} | {lvl['output_tokens_per_s']:9.1f} | "
                f"{lvl['ms_per_step']:7.2f} | {lvl.get('pct_of_copy_bandwidth', '-')}"
            )
    rows += [f"{k}: {v}" for k, v in report["ratios"].items()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="llama-8b", choices=["llama-8b", "llama-1b"])
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--static-batch-sizes", default="1,32")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--no-int4", action="store_true")
    parser.add_argument("--int4-batch-sizes", default="1", help="batch sizes of the int4 engine")
    parser.add_argument("--no-check", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="also profile a batch-1 request of the native engines (torch profiler)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = run_gpu_engine_benchmark(
        args.shape,
        tuple(int(b) for b in args.batch_sizes.split(",")),
        args.prompt_tokens,
        args.new_tokens,
        tuple(int(b) for b in args.static_batch_sizes.split(",") if b),
        not args.no_int4,
        not args.no_check,
        args.profile,
        tuple(int(b) for b in args.int4_batch_sizes.split(",")),
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(short_table(report))


if __name__ == "__main__":
    main()
