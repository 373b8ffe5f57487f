"""Decode throughput of the native engine vs the HF backend at batch sizes 1, 8, 16, 32.

Same machine, model (SmolLM2-135M), workload (short distinct prompts, `ignore_eos`, fixed new
tokens) and run; each batch size runs native then HF back to back so machine noise hits both.
"""

from __future__ import annotations

import asyncio
import time

from vireo.tools.bench.native_common import hf_engine, native_engine, request, throughput, write
from vireo.tools.machine import machine_info

TOPICS = [
    "a lighthouse",
    "a chess match",
    "the first snow",
    "a lost key",
    "a night train",
    "a bakery",
    "an old map",
    "a storm at sea",
]


def prompts(n: int) -> list[str]:
    return [f"Write a short story about {TOPICS[i % len(TOPICS)]} (story {i})." for i in range(n)]


async def measure(batch_sizes=(1, 8, 16, 32), max_tokens: int = 64, dtype: str = "float32") -> dict:
    native = native_engine(dtype=dtype, max_batch=max(batch_sizes), speculation="off")
    hf = hf_engine(dtype="float32", max_batch=max(batch_sizes))
    warm = [request(p, 8, ignore_eos=True) for p in prompts(2)]
    await throughput(native, warm)
    await throughput(hf, warm)
    rows = []
    for bs in batch_sizes:
        reqs = lambda: [request(p, max_tokens, ignore_eos=True) for p in prompts(bs)]  # noqa: E731
        ours = await throughput(native, reqs())
        base = await throughput(hf, reqs())
        rows.append(
            {
                "batch": bs,
                "native_tok_s": round(ours["tok_s"], 1),
                "hf_tok_s": round(base["tok_s"], 1),
                "speedup": round(ours["tok_s"] / base["tok_s"], 2),
                "native_tok_per_cpu_s": round(ours["tok_per_cpu_s"], 1),
                "hf_tok_per_cpu_s": round(base["tok_per_cpu_s"], 1),
                "speedup_cpu_time": round(ours["tok_per_cpu_s"] / base["tok_per_cpu_s"], 2),
            }
        )
        print(rows[-1], flush=True)
    await native.shutdown()
    await hf.shutdown()
    return {
        "benchmark": "native_throughput",
        "model": "smollm2-135m",
        "native_dtype": dtype,
        "hf_dtype": "float32",
        "max_tokens": max_tokens,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "rows": rows,
    }


def run(**kw) -> dict:
    return asyncio.run(measure(**kw))


if __name__ == "__main__":
    print(write("native_throughput", run()))
