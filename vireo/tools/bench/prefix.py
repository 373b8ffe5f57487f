"""Prefix caching: multi-turn chat TTFT with vs without the cache, its cost at 0 % hits, hit rate.

Each conversation shares a ~1k-token system prompt and carries a 512- or 2k-token history. The
previous turn's request warms the cache (as in a real chat), then the next turn is timed with the
cache and, on the same engine, with lookup disabled for that request. The 0 %-hit cost compares
decode throughput of two engines (cache on / off) over unique prompts, alternating runs. The same
TTFT rows are taken on the vLLM backend (its per-request `skip_reading_prefix_cache` is the
cache-off case) for comparison, when vLLM is installed.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from vireo.inference.api import GenerationRequest, SamplingParams
from vireo.tools.bench.native_common import native_engine, request, throughput, timed, write
from vireo.tools.machine import machine_info
from vireo.tools.paths import DATA

QUESTIONS = [
    "Can I return a tent I used once?",
    "How long does a zip repair take?",
    "Do you repair climbing ropes?",
    "When does an order placed at 3 pm leave?",
]


def system_prompt() -> str:
    return (DATA / "support_system_prompt.txt").read_text().strip()


def history_turns() -> list[str]:
    """Paragraphs of held-out prose, used as long user messages in the history."""
    lines = (DATA / "heldout_text.txt").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def conversation(engine, history_tokens: int, topic: int) -> list[dict]:
    """System + alternating turns until the history holds about `history_tokens` tokens."""
    messages = [{"role": "system", "content": system_prompt()}]
    base = engine.count_tokens(engine.render(GenerationRequest(messages=messages)))
    paragraphs, i = history_turns(), topic
    while engine.count_tokens(engine.render(GenerationRequest(messages=messages))) - base < history_tokens:
        text = paragraphs[i % len(paragraphs)]
        messages.append({"role": "user", "content": f"Here is a note from my trip diary: {text}"})
        messages.append({"role": "assistant", "content": "Thank you for sharing it. " + text[:200]})
        i += 1
    return messages


def chat_request(messages, cache: bool, max_tokens: int = 4) -> GenerationRequest:
    return GenerationRequest(
        messages=messages,
        sampling=SamplingParams(max_tokens=max_tokens),
        prefix_cache=cache,
        speculation="off",
        app="chat",
    )


async def ttft_for_history(engine, history_tokens: int, topic: int) -> dict:
    messages = conversation(engine, history_tokens, topic)
    await timed(engine, chat_request(messages[:-1], cache=True))  # the previous turn warms the cache
    turn = messages + [{"role": "user", "content": QUESTIONS[topic % len(QUESTIONS)]}]
    prompt_tokens = engine.count_tokens(engine.render(chat_request(turn, True)))
    # First: only the previous turn is cached (the real case); second: the whole prompt is.
    warm = [await timed(engine, chat_request(turn, cache=True)) for _ in range(2)]
    # The cache-off run goes last: vLLM's per-request switch skips reading the cache but still
    # writes it, so run first it would turn the "previous turn only" run into a full hit.
    cold = await timed(engine, chat_request(turn, cache=False))
    return {
        "history_tokens": history_tokens,
        "prompt_tokens": prompt_tokens,
        "ttft_no_cache_s": round(cold["ttft_s"], 3),
        "ttft_cache_s": round(warm[0]["ttft_s"], 3),
        "speedup": round(cold["ttft_s"] / warm[0]["ttft_s"], 1),
        "cached_tokens": warm[0]["cached"],
        "ttft_full_hit_s": round(warm[1]["ttft_s"], 3),
        "same_output": cold["text"] == warm[0]["text"] == warm[1]["text"],
    }


async def zero_hit_cost(model, rounds: int = 4, batch: int = 8, max_tokens: int = 48) -> dict:
    """Throughput with the cache on vs off when no prompt shares a prefix with another."""
    on = native_engine(model, prefix_caching=True, speculation="off")
    off = native_engine(model, prefix_caching=False, speculation="off")
    ratios, counter = [], 0
    for round_no in range(rounds):
        rates = {}
        order = (("on", on), ("off", off)) if round_no % 2 == 0 else (("off", off), ("on", on))
        for name, engine in order:  # alternate who goes first, so drift hits both alike
            reqs = []
            for _ in range(batch):
                counter += 1
                reqs.append(
                    request(
                        f"{counter} unique request {counter * 7919}: describe a river.", max_tokens, ignore_eos=True
                    )
                )
            rates[name] = (await throughput(engine, reqs))["tok_per_cpu_s"]
        ratios.append(rates["on"] / rates["off"])
    hit = on.stats().prefix_hit_rate
    await on.shutdown()
    await off.shutdown()
    return {
        "batch": batch,
        "rounds": rounds,
        "measure": "tokens per CPU-second",
        "throughput_ratio_on_vs_off": [round(r, 3) for r in ratios],
        "mean_cost_pct": round(100 * (1 - statistics.mean(ratios)), 2),
        "median_cost_pct": round(100 * (1 - statistics.median(ratios)), 2),
        "hit_rate_during": hit,
    }


async def vllm_ttft(histories) -> list[dict] | str:
    """The same TTFT rows on the vLLM backend (in-process, enforce_eager), or why they are missing."""
    from vireo.inference.factory import backend_available, create_engine
    from vireo.inference.local import EngineConfig

    if not backend_available("vllm"):
        return "vLLM is not installed (pip install 'vireo[vllm]')"
    engine = create_engine(EngineConfig(backend="vllm", prefix_caching=True, speculation="off", max_batch=8))
    await engine.start()
    rows = []
    for topic, size in enumerate(histories):
        rows.append(await ttft_for_history(engine, size, topic))
        print("vllm", rows[-1], flush=True)
    await engine.shutdown()
    return rows


async def measure(histories=(512, 2048)) -> dict:
    engine = native_engine(kv_cache_tokens=32768, speculation="off")
    rows = []
    for topic, size in enumerate(histories):
        rows.append(await ttft_for_history(engine, size, topic))
        print(rows[-1], flush=True)
    stats = engine.stats()
    cost = await zero_hit_cost(engine.model)
    print(cost, flush=True)
    await engine.shutdown()
    vllm_rows = await vllm_ttft(histories)
    return {
        "benchmark": "prefix_cache",
        "model": "smollm2-135m",
        "block_size": 16,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "ttft": rows,
        "hit_rate_overall": round(stats.prefix_hit_rate, 3),
        "hit_rate_by_app": {k: round(v, 3) for k, v in stats.prefix_hit_rate_by_app.items()},
        "zero_hit_cost": cost,
        "vllm_ttft": vllm_rows,
        "goals": {"ttft_speedup_at_2k": ">= 10x", "zero_hit_cost": "< 2 %"},
    }


def run(**kw) -> dict:
    return asyncio.run(measure(**kw))


if __name__ == "__main__":
    print(write("prefix", run()))
