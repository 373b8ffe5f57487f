"""On one GPU: requests that arrive while decodes are in flight join the run-ahead (`overlap.py`), with
CUDA graphs on, against the same engine with overlapped decoding off. Greedy, float32, random weights of
the Llama-1B shape: prints how many steps admitted ahead, and per request whether its tokens equal the
plain path's (float32 keeps a different batch composition from flipping a near-tie; a mismatch is named).

    PYTHONPATH=. python3 vireo/tools/bench/gpu/overlap_admission.py [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import torch

from vireo.inference.api import GenerationRequest, SamplingParams, TokenDelta
from vireo.inference.local import EngineConfig
from vireo.inference.registry import ModelRegistry

REQUESTS = 24
LENGTHS = (7, 40, 16, 64, 3, 25, 90, 33)


async def staggered(engine, gap_s: float) -> list[list[int]]:
    """REQUESTS prompts arriving `gap_s` apart while earlier ones decode; each one's token ids."""

    async def one(i: int) -> list[int]:
        await asyncio.sleep(gap_s * i)
        prompt = f"Request {i}: " + "the river town woke slowly " * (4 + i % 7)
        sampling = SamplingParams(max_tokens=LENGTHS[i % len(LENGTHS)], ignore_eos=True)
        ids: list[int] = []
        async for event in engine.generate(GenerationRequest(prompt=prompt, sampling=sampling, speculation="off")):
            if isinstance(event, TokenDelta):
                ids.extend(event.token_ids)
        return ids

    return list(await asyncio.gather(*(one(i) for i in range(REQUESTS))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from vireo.inference.native.engine import NativeEngine

    cuda = torch.cuda.is_available()
    home = Path(tempfile.mkdtemp())
    name = "random:llama-1b" if cuda else "random:tiny"
    folder = ModelRegistry(home).resolve(name).path
    report: dict = {"card": torch.cuda.get_device_name() if cuda else "cpu", "model": name, "runs": {}}
    outputs = {}
    for label, overlap in (("overlap", True), ("plain", False)):
        config = EngineConfig(
            model=name,
            device="cuda" if cuda else "cpu",
            dtype="float32",
            overlap_decode=overlap,
            cuda_graphs=True,
            speculation="off",
            max_batch=16,
            kv_cache_tokens=32768,
            home=home,
        )
        engine = NativeEngine(config, folder, name)
        began = time.perf_counter()
        outputs[label] = asyncio.run(staggered(engine, 0.01 if cuda else 0.003))
        report["runs"][label] = {
            "wall_s": round(time.perf_counter() - began, 3),
            "steps_run_ahead": engine.overlap.steps_run_ahead,
            "steps_admitted_ahead": engine.overlap.steps_admitted_ahead,
            "tokens": sum(len(ids) for ids in outputs[label]),
        }
        engine.loop.stop()
        engine.loop.join(5)
    same = [a == b for a, b in zip(outputs["overlap"], outputs["plain"])]
    lengths_ok = all(len(ids) == LENGTHS[i % len(LENGTHS)] for i, ids in enumerate(outputs["overlap"]))
    report["requests_identical"] = f"{sum(same)}/{len(same)}"
    report["every_request_made_its_tokens"] = lengths_ok
    report["first_mismatches"] = [
        {"request": i, "at_token": next((t for t, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))}
        for i, (a, b, ok) in enumerate(zip(outputs["overlap"], outputs["plain"], same))
        if not ok
    ][:5]
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
