"""`python -m vireo.tools.bench.tensor_parallel`: the native engine at tensor_parallel_size 1 and N on the
same random weights, in one run: greedy equality, logit difference, decode throughput and step time.

The model is a `random:<shape>` registry entry (real shape, seeded random weights made on each rank's
device, one tensor at a time, so a rank never holds more than its shard plus one whole tensor). For each
size: an engine in this process (rank 0; ranks 1..N-1 are its own processes), a warm-up, then batch
1, 16 and 64 (each `batch` distinct random prompts of `prompt_tokens`, `new_tokens` greedy tokens, all
in flight at once); the step time is the median inter-token gap. Equality: the greedy texts of the
batch-1 level and the logits of one prompt (`forward_logits`), TP=N against TP=1.

    python -m vireo.tools.bench.tensor_parallel --shape llama-8b --sizes 1,2 --json $OUT/tp.json
    python -m vireo.tools.bench.tensor_parallel --shape tiny --device cpu --sizes 1,2   # the path, on CPU
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
from pathlib import Path

import torch

from vireo.inference.engine_config import EngineConfig
from vireo.inference.factory import create_engine
from vireo.inference.native.engine import NativeEngine
from vireo.tools.bench.engines import run_level
from vireo.tools.bench.random_weights import prompt_text, random_prompts
from vireo.tools.machine import machine_info, source_commit

# NVLink multicast stays off (the lent GPUs' rule), also in the ranks' processes, which inherit this
for name in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"):
    os.environ[name] = "0" if name == "NCCL_NVLS_ENABLE" else "1"


async def measure(config: EngineConfig, batches: list[int], prompt_tokens: int, new_tokens: int) -> dict:
    """One engine's levels, its batch-1 greedy texts and one prompt's logits."""
    engine = create_engine(config)
    assert isinstance(engine, NativeEngine), "own_process=False builds the native engine here"
    await engine.start()
    try:
        vocab = engine.model.shape.vocab
        warm = [prompt_text(p) for p in random_prompts(2, prompt_tokens, vocab, seed=99)]
        await run_level(engine, warm, 8, 2)  # CUDA graphs captured, kernels compiled
        levels, texts = [], {}
        for batch in batches:
            prompts = [prompt_text(p) for p in random_prompts(batch, prompt_tokens, vocab, seed=batch)]
            summary, texts[batch] = await run_level(engine, prompts, new_tokens, batch)
            summary["step_ms_p50"] = round(1000 * summary["itl_p50_s"], 3) if summary["itl_p50_s"] else None
            levels.append(summary)
        ids = torch.tensor(random_prompts(1, prompt_tokens, vocab, seed=7))
        logits = engine.forward_logits(ids).float().cpu()
        return {"levels": levels, "texts": texts, "logits": logits}
    finally:
        await engine.shutdown()
        del engine
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="llama-8b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="1,2")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    base = EngineConfig(
        model=f"random:{args.shape}",
        device=args.device,
        max_batch=max(batches),
        max_model_len=args.prompt_tokens + args.new_tokens + 16,
        kv_cache_tokens=max(batches) * (args.prompt_tokens + args.new_tokens + 32),
        own_process=False,  # rank 0 here: forward_logits is read in this process
        prefix_caching=False,  # distinct prompts; nothing to share
    )
    runs = {
        size: asyncio.run(
            measure(
                base.model_copy(update={"tensor_parallel_size": size}), batches, args.prompt_tokens, args.new_tokens
            )
        )
        for size in sizes
    }
    one = runs[sizes[0]]
    result: dict = {
        "benchmark": "tensor_parallel",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": source_commit(),
        "machine": machine_info(),
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if args.device == "cuda"
        else ["cpu"],
        "shape": args.shape,
        "dtype": "bfloat16" if args.device == "cuda" else "float32",
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "sizes": {},
    }
    for size in sizes:
        run = runs[size]
        by_batch = {lv["concurrency"]: lv for lv in run["levels"]}
        base_levels = {lv["concurrency"]: lv for lv in one["levels"]}
        result["sizes"][str(size)] = {
            "levels": run["levels"],
            "greedy_equal_to_size_1_at_batch_1": run["texts"][batches[0]] == one["texts"][batches[0]],
            "logits_max_abs_diff_vs_size_1": float((run["logits"] - one["logits"]).abs().max()),
            "logits_max_abs_vs_size_1": float(one["logits"].abs().max()),
            "throughput_ratio_vs_size_1": {
                str(b): round(by_batch[b]["output_tokens_per_s"] / base_levels[b]["output_tokens_per_s"], 3)
                for b in batches
            },
            "step_time_ratio_vs_size_1": {
                str(b): round(by_batch[b]["step_ms_p50"] / base_levels[b]["step_ms_p50"], 3)
                for b in batches
                if by_batch[b]["step_ms_p50"] and base_levels[b]["step_ms_p50"]
            },
        }
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(f"{'size':>4} {'batch':>5} {'tok/s':>10} {'step ms':>8} {'x size 1':>8}")
    for size in sizes:
        entry = result["sizes"][str(size)]
        for level in entry["levels"]:
            b = level["concurrency"]
            print(
                f"{size:>4} {b:>5} {level['output_tokens_per_s']:>10.1f} {level['step_ms_p50'] or 0:>8.2f} "
                f"{entry['throughput_ratio_vs_size_1'][str(b)]:>8.3f}"
            )
        print(
            f"size {size}: greedy equal {entry['greedy_equal_to_size_1_at_batch_1']}, "
            f"max |logit diff| {entry['logits_max_abs_diff_vs_size_1']:.4g}"
        )
    return result


if __name__ == "__main__":
    main()
