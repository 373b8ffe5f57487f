"""Helpers shared by the native-engine benchmarks: engines, requests, timed runs, the result file."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from vireo.inference.api import GenerationRequest, SamplingParams, TokenDelta
from vireo.inference.local import EngineConfig
from vireo.inference.registry import ModelRegistry
from vireo.tools.paths import RESULTS


def model_path(name: str = "smollm2-135m") -> Path:
    return ModelRegistry().resolve(name).path


def native_engine(model=None, name: str = "smollm2-135m", **settings):
    from vireo.inference.native.engine import NativeEngine

    return NativeEngine(EngineConfig(model=name, **settings), model_path(name), name, model=model)


def hf_engine(**settings):
    from vireo.inference.backends.hf import HFEngine

    return HFEngine(EngineConfig(**settings), model_path(), "smollm2-135m")


def request(prompt: str, max_tokens: int, **kw) -> GenerationRequest:
    sampling = SamplingParams(max_tokens=max_tokens, ignore_eos=kw.pop("ignore_eos", False))
    return GenerationRequest(prompt=prompt, sampling=sampling, **kw)


async def timed(engine, req: GenerationRequest) -> dict:
    """Run one request; time to first token and to the end, and the text."""
    start = time.perf_counter()
    first = None
    final = None
    async for event in engine.generate(req):
        if isinstance(event, TokenDelta) and first is None and event.token_ids:
            first = time.perf_counter() - start
        final = event
    if final is None:
        raise RuntimeError(f"the engine streamed nothing for request {req.request_id}")
    return {
        "ttft_s": first,
        "total_s": time.perf_counter() - start,
        "text": final.text,
        "tokens": final.usage.completion_tokens,
        "cached": final.usage.cached_tokens,
    }


async def throughput(engine, requests: list[GenerationRequest]) -> dict:
    """Run requests concurrently; tokens per second of wall time and per CPU-second of this process.

    On a shared machine wall time mostly measures the neighbours; CPU time spent by this process
    is the steadier measure of how much work each token costs.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    runs = await asyncio.gather(*(timed(engine, r) for r in requests))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    tokens = sum(r["tokens"] for r in runs)
    return {
        "tok_s": tokens / wall,
        "tok_per_cpu_s": tokens / cpu,
        "wall_s": wall,
        "tokens": tokens,
        "texts": [r["text"] for r in runs],
    }


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path
