"""On one GPU, the native engine alone under staggered arrivals (what the platform delivers): closed-loop
clients that wait a random 0..JITTER ms before each request, 128-token prompts, 128 new tokens (ignore
EOS), random weights of the Llama-8B shape in bf16, CUDA graphs and overlapped decoding on. Runs with
arrivals admitted into the run-ahead (`OverlappedDecoding.admit_ahead`) and with them draining it, in
turn (A B A B), in one process on one engine; prints tok/s, TTFT p50 and how many steps admitted ahead.

    PYTHONPATH=. python3 vireo/tools/bench/gpu/staggered_arrivals.py [--clients 64] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vireo.inference.api import GenerationRequest, SamplingParams, TokenDelta
from vireo.inference.local import EngineConfig
from vireo.inference.registry import ModelRegistry


async def one_client(engine, client: int, requests: int, jitter_s: float, rng: random.Random, ttfts: list) -> int:
    tokens = 0
    for r in range(requests):
        await asyncio.sleep(rng.uniform(0, jitter_s))
        prompt = " ".join(f"w{(client * 131 + r * 17 + i) % 997}" for i in range(120))
        request = GenerationRequest(
            prompt=prompt, sampling=SamplingParams(max_tokens=128, ignore_eos=True), speculation="off"
        )
        began, first = time.perf_counter(), None
        async for event in engine.generate(request):
            if isinstance(event, TokenDelta):
                first = first or time.perf_counter()
                tokens += len(event.token_ids)
        ttfts.append((first or time.perf_counter()) - began)
    return tokens


async def level(engine, clients: int, requests: int, jitter_s: float, seed: int) -> dict:
    rng = random.Random(seed)
    ttfts: list[float] = []
    ahead0, admitted0 = engine.overlap.steps_run_ahead, engine.overlap.steps_admitted_ahead
    began = time.perf_counter()
    made = await asyncio.gather(*(one_client(engine, c, requests, jitter_s, rng, ttfts) for c in range(clients)))
    wall = time.perf_counter() - began
    return {
        "tok_s": round(sum(made) / wall, 1),
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 2),
        "steps_run_ahead": engine.overlap.steps_run_ahead - ahead0,
        "steps_admitted_ahead": engine.overlap.steps_admitted_ahead - admitted0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4, help="per client")
    parser.add_argument("--jitter-ms", type=float, default=20.0)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from vireo.inference.native.engine import NativeEngine

    cuda = torch.cuda.is_available()
    name = "random:llama-8b" if cuda else "random:tiny"
    home = Path(tempfile.mkdtemp())
    config = EngineConfig(
        model=name,
        device="cuda" if cuda else "cpu",
        dtype="bfloat16" if cuda else "float32",
        overlap_decode=True,
        speculation="off",
        max_batch=args.clients,
        home=home,
    )
    engine = NativeEngine(config, ModelRegistry(home).resolve(name).path, name)
    asyncio.run(level(engine, min(8, args.clients), 1, 0.0, 0))  # warm-up: graphs, kernels
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    report: dict = {"card": torch.cuda.get_device_name() if cuda else "cpu", "model": name, "args": settings}
    runs = []
    for turn in range(args.turns):
        for admit_ahead in (True, False):
            engine.overlap.admit_ahead = admit_ahead
            result = asyncio.run(level(engine, args.clients, args.requests, args.jitter_ms / 1000, turn))
            runs.append({"turn": turn, "admit_ahead": admit_ahead, **result})
            print(json.dumps(runs[-1]), flush=True)
    report["runs"] = runs
    engine.loop.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
