"""Speculative decoding (prompt lookup) vs plain decoding at batch sizes 1, 4, 16, 32.

Grounded tasks (summarize, answer from retrieved passages, edit code) repeat their input, so
n-gram guesses often hold; open-ended chat is the control. Greedy outputs must be identical with
and without speculation. A draft-model row is left out on purpose: the only same-tokenizer draft
here for SmolLM2 is SmolLM2 itself, which cannot be faster than the target.
"""

from __future__ import annotations

import asyncio
import time

from vireo.inference.api import GenerationRequest, SamplingParams

from benchmarks.native_common import machine, native_engine, write

ARTICLE = (
    "The town council of Millbrook voted on Tuesday to reopen the old railway bridge as a path "
    "for walkers and cyclists. The bridge, built in 1911, has been closed since 1998, when "
    "inspectors found rust in two of its steel girders. Repairs will cost about 2.4 million "
    "euros, of which the regional government will pay 1.5 million; the rest comes from the "
    "town's own budget and a local fundraising campaign that has already collected 180,000 "
    "euros. Work is expected to start in March and to take fourteen months. Council member Ana "
    "Ruiz, who proposed the plan, said the bridge would link the two halves of the town and "
    "shorten the walk to the secondary school by twenty minutes. Two members voted against, "
    "arguing that the money should go to road repairs first.")
PASSAGES = (
    "[1] The Kestrel 2 tent weighs 1.9 kg and sleeps two people. Its poles are aluminium and "
    "its flysheet has a hydrostatic head of 3000 mm.\n"
    "[2] The Kestrel 3 tent weighs 2.6 kg and sleeps three people. It has two doors and two "
    "porches, and its flysheet has a hydrostatic head of 4000 mm.\n"
    "[3] Both Kestrel tents come with a two-year repair guarantee and can be pitched flysheet "
    "first, which keeps the inner tent dry when pitching in rain.")
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
    "    return total / count\n")
TASKS = {
    "summarize": f"Summarize this article in three sentences.\n\n{ARTICLE}",
    "rag_answer": f"Answer using only these passages, quoting them.\n\n{PASSAGES}\n\n"
                  "Question: How heavy is the Kestrel 3 tent and how many doors does it have?",
    "code_edit": f"Rename the variable `total` to `paid_sum` in this function and return the whole "
                 f"function.\n\n```python\n{CODE}```",
    "open_chat": "What is a good hobby to start in winter, and why?",
}
GROUNDED = ("summarize", "rag_answer", "code_edit")


def task_request(task: str, mode: str, max_tokens: int) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": TASKS[task]}],
                             sampling=SamplingParams(max_tokens=max_tokens), speculation=mode,
                             prefix_cache=False)


async def run_batch(engine, tasks: list[str], mode: str, max_tokens: int) -> dict:
    before = (engine.speculator.proposed, engine.speculator.accepted,
              engine.speculator.steps, engine.speculator.emitted)
    start, cpu_start = time.perf_counter(), time.process_time()
    finals = await asyncio.gather(*(engine.complete(task_request(t, mode, max_tokens)) for t in tasks))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    proposed, accepted, steps, emitted = (now - then for now, then in zip(
        (engine.speculator.proposed, engine.speculator.accepted, engine.speculator.steps,
         engine.speculator.emitted), before))
    tokens = sum(f.usage.completion_tokens for f in finals)
    return {"tok_s": tokens / wall, "tok_per_cpu_s": tokens / cpu, "texts": [f.text for f in finals],
            "acceptance": accepted / proposed if proposed else 0.0,
            "tokens_per_verify_step": emitted / steps if steps else 1.0}


async def compare(engine, tasks: list[str], max_tokens: int) -> dict:
    plain = await run_batch(engine, tasks, "off", max_tokens)
    spec = await run_batch(engine, tasks, "prompt_lookup", max_tokens)
    return {"speedup": round(spec["tok_s"] / plain["tok_s"], 2),
            "plain_tok_s": round(plain["tok_s"], 1), "spec_tok_s": round(spec["tok_s"], 1),
            "speedup_cpu_time": round(spec["tok_per_cpu_s"] / plain["tok_per_cpu_s"], 2),
            "acceptance": round(spec["acceptance"], 3),
            "tokens_per_verify_step": round(spec["tokens_per_verify_step"], 2),
            "outputs_identical": plain["texts"] == spec["texts"]}


async def measure(batch_sizes=(1, 4, 16, 32), max_tokens: int = 64) -> dict:
    engine = native_engine(speculation="prompt_lookup", max_batch=max(batch_sizes))
    await compare(engine, ["open_chat"], 8)  # warm-up
    per_task = {}
    for task in TASKS:  # batch size 1, one task at a time
        per_task[task] = await compare(engine, [task], max_tokens)
        print(task, per_task[task], flush=True)
    batches = {}
    names = list(TASKS)
    for bs in batch_sizes[1:] if batch_sizes[0] == 1 else batch_sizes:
        batches[bs] = await compare(engine, [names[i % len(names)] for i in range(bs)], max_tokens)
        print(bs, batches[bs], flush=True)
    await engine.shutdown()
    return {"benchmark": "speculative_decoding", "proposer": "prompt_lookup", "model": "smollm2-135m",
            "max_tokens": max_tokens, "machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "batch_1_by_task": per_task, "by_batch": batches,
            "goals": {"grounded_bs1": ">= 2x", "everywhere": ">= 0.95x"}}


def run(**kw) -> dict:
    return asyncio.run(measure(**kw))


if __name__ == "__main__":
    print(write("spec", run()))
