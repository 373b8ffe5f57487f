"""The platform against its own engine: REST jobs through API → Celery → worker → SSE, and the same
engine alone in this process, on the same weights and the same workload, side by side in one run.

Workload (issue #16): prompts of `prompt_tokens` tokens (each opening with its own word, so none reuses
another's cached prefix, and each level its own; the same prompts on both paths) and `new_tokens` new
tokens per request, greedy, end-of-sequence ignored, at each concurrency (clients in flight). Per level and path:
generated tokens per second (all tokens / wall time) and time to first token (p50, p95; the platform's
measured at the client, from submit to the first token event). Ratios: platform tok/s over engine
tok/s, and the platform's TTFT p50 minus the engine's (its overhead). The engine alone runs first and is
shut down before the platform starts, so the two never share the machine. Where the time went, per level and
path: the engine's steps by kind with the ms each took (`step_tally`), and the Triton kernels compiled in the
measured time.

The engine is built by the settings alone (`Settings().for_worker().engine`, VIREO_* as the worker reads
them), so the worker and the engine alone are the same engine (the engine alone always in this process;
the worker's in a process of its own where the settings say so, the default on CUDA). With
`in_worker_too`, the platform runs a second time with the engine inside the worker's own process
(VIREO_OWN_PROCESS=false), so the two designs are compared in one run; `random:llama-8b` gives both the same
seeded weights on a GPU no checkpoint reaches (vireo/inference/random_models.py).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import multiprocessing
import os
import statistics
import time
import uuid
from dataclasses import asdict
from typing import Any

import httpx
import psutil
import redis

from vireo.inference.api import GenerationRequest, SamplingParams, TokenDelta
from vireo.inference.factory import create_engine
from vireo.inference.native.stats import STEP_MS_EDGES
from vireo.platform.processes import free_port, start, stop, vireo_command, wait_http_ok, wait_worker_ready
from vireo.platform.settings import Settings
from vireo.tools.bench.rest_clients import HttpClient, jobs_client
from vireo.tools.machine import load_average, machine_info, source_commit

KEY = "bench-ratio-key"
WARM_CLIENTS, WARM_REQUESTS = 4, 12
GOALS = {"platform_over_engine_tok_s_at_32_and_64": 0.9, "ttft_overhead_ms_p50": 10}
# a worker's engine numbers reach the API within 1.25 s (the engine's process sends them every 0.25 s, the
# worker publishes every 1 s): read them this long after a level's edges
STATS_SETTLE_S = 1.5


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _summary(wall_s: float, tokens: list[int], ttfts: list[float]) -> dict:
    return {
        "requests": len(tokens),
        "wall_s": round(wall_s, 3),
        "output_tokens": sum(tokens),
        "all_requests_made_every_token": len(set(tokens)) == 1,
        "tok_s": round(sum(tokens) / wall_s, 2),
        "ttft_p50_ms": round(1000 * _p(ttfts, 0.5), 2),
        "ttft_p95_ms": round(1000 * _p(ttfts, 0.95), 2),
    }


def step_tally(before: dict, after: dict) -> dict:
    """The engine steps run between two stats snapshots (EngineStats fields, from the engine or the API's
    /v1/engine/stats), by kind, and the engine's step thread's ms per step of each kind, mean and (where the
    engine keeps a histogram) median and 90th percentile: where a level's tokens per second came from. Empty
    for engines that do not count steps (only the native one does)."""
    steps = {
        kind: count - before.get("steps_by_kind", {}).get(kind, 0)
        for kind, count in (after.get("steps_by_kind") or {}).items()
    }
    seconds = {
        kind: spent - before.get("step_seconds_by_kind", {}).get(kind, 0.0)
        for kind, spent in (after.get("step_seconds_by_kind") or {}).items()
    }
    tally = {
        "steps_by_kind": steps,
        "ms_per_step_by_kind": {kind: round(1000 * seconds[kind] / n, 2) for kind, n in steps.items() if n > 0},
    }
    histograms = after.get("step_ms_histogram_by_kind") or {}
    if histograms:
        earlier = before.get("step_ms_histogram_by_kind") or {}
        tally["ms_per_step_p50_p90_by_kind"] = {
            kind: step_percentiles([n - m for n, m in zip(counts, earlier.get(kind) or [0] * len(counts))], (0.5, 0.9))
            for kind, counts in histograms.items()
            if steps.get(kind)
        }
    return tally


def step_percentiles(counts: list[int], quantiles: tuple[float, ...]) -> list[float]:
    """Step times (ms) at `quantiles` of a histogram over `STEP_MS_EDGES`: the upper edge of the bucket each
    falls in (20 % wide), the last edge for the bucket beyond them."""
    cumulative = list(itertools.accumulate(counts))
    buckets = (bisect.bisect_left(cumulative, quantile * cumulative[-1]) for quantile in quantiles)
    return [STEP_MS_EDGES[min(bucket, len(STEP_MS_EDGES) - 1)] for bucket in buckets]


def triton_cache_entries() -> int:
    """Kernels in Triton's on-disk cache (one folder per compile): the difference over a level is how many
    kernels were compiled inside its measured time (0 on a CPU, where nothing is compiled)."""
    folder = os.environ.get("TRITON_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".triton", "cache")
    try:
        return len(os.listdir(folder))
    except OSError:
        return 0


def fixed_prompts(engine, tokens: int, count: int) -> list[str]:
    """`count` prompts of `tokens` tokens each for the engine's tokenizer, each opening with a word of its
    own, so no request reuses another's cached prefix (the fewest filler words that reach the count)."""
    filler = ["t7"] if engine.count_tokens("t7 t8") == 2 else ["the", "quick", "brown", "fox", "jumps"]
    prompts, words = [], 1

    def text(head: str, words: int) -> str:
        return " ".join([head] + [filler[k % len(filler)] for k in range(1, words)])

    for i in range(count):  # each starts from the last one's length: the heads differ by a token at most
        head = f"t{i + 1}"
        while words > 1 and engine.count_tokens(text(head, words - 1)) >= tokens:
            words -= 1
        while engine.count_tokens(text(head, words)) < tokens:
            words += 1
        prompts.append(text(head, words))
    return prompts


def prompts_by_level(prompts: list[str], levels: list[int], requests) -> dict[int, list[str]]:
    """Each level's own prompts (`requests(c)` of them, taken in turn from `prompts`), so that no level finds
    the prompts of an earlier one in the prefix cache: every measured request prefills its whole prompt."""
    by_level, taken = {}, 0
    for c in levels:
        by_level[c] = prompts[taken : taken + requests(c)]
        taken += requests(c)
    return by_level


def warm_prompts(prompts: list[str]) -> list[str]:
    """Prompts for the warm-up rounds, none of which shares a prefix with a measured one."""
    count = max(len(prompts), WARM_REQUESTS)
    return [f"t9 {prompt}" for prompt in (prompts * count)[:count]]


async def _engine_level(engine, prompts: list[str], new_tokens: int, clients: int, requests: int) -> dict:
    tokens: list[int] = []
    ttfts: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def client() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            sent, first = time.perf_counter(), None
            request = GenerationRequest(
                prompt=prompts[i], sampling=SamplingParams(max_tokens=new_tokens, ignore_eos=True), app="bench"
            )
            async for event in engine.generate(request):
                if isinstance(event, TokenDelta) and first is None:
                    first = time.perf_counter()
                elif not isinstance(event, TokenDelta):
                    tokens.append(event.usage.completion_tokens)
            ttfts.append((first or time.perf_counter()) - sent)

    started_at = time.time()
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[client() for _ in range(clients)])
    wall = time.perf_counter() - started
    busy = round((time.process_time() - cpu) / wall, 2)
    summary = _summary(wall, tokens, ttfts)
    return {**summary, "started_at": round(started_at, 3), "cpu_cores_busy": {"bench_process": busy}}


async def engine_alone(settings: Settings, prompt_tokens: int, new_tokens: int, levels: list[int], requests) -> tuple:
    engine = create_engine(settings.for_worker().engine.model_copy(update={"own_process": False}))
    await engine.start()
    try:
        prompts = fixed_prompts(engine, prompt_tokens, sum(requests(c) for c in levels))
        by_level = prompts_by_level(prompts, levels, requests)
        # warm-up (first requests run slower for a while on CPU; CUDA graphs are captured): both paths alike
        await _engine_level(engine, warm_prompts(prompts), new_tokens, WARM_CLIENTS, WARM_REQUESTS)
        results = {}
        for c in levels:  # a warm round at each level first: CUDA graphs are captured per batch size
            await _engine_level(engine, warm_prompts(by_level[c]), new_tokens, c, c)
            before, kernels = asdict(engine.stats()), triton_cache_entries()
            results[c] = await _engine_level(engine, by_level[c], new_tokens, c, requests(c))
            results[c]["steps"] = step_tally(before, asdict(engine.stats()))
            results[c]["triton_kernels_compiled"] = triton_cache_entries() - kernels
        counts = [engine.count_tokens(p) for p in prompts]
        info = {"backend": engine.backend, "model": engine.model_name, "prompt_tokens": [min(counts), max(counts)]}
        return prompts, results, info
    finally:
        await engine.shutdown()


def _job_body(prompt: str, new_tokens: int) -> dict:
    return {
        "app": "chat",
        "input": {"prompt": prompt, "max_tokens": new_tokens, "temperature": 0},
        "options": {"ignore_eos": True, "max_tokens": new_tokens},
    }


async def _platform_clients(
    url: str, prompts: list[str], new_tokens: int, clients: int, http: HttpClient, key: str = KEY
) -> tuple[list[dict], float]:
    """`clients` REST clients (speaking `http`) working through `prompts` (submit, follow the job's SSE events to
    its end), then each job's record: a timeline per request (client clock and the record's own times) and when
    the last stream ended (the records are read after that, outside the measured time)."""
    timelines: list[dict] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for prompt in prompts:
        queue.put_nowait(prompt)
    jobs = jobs_client(http, url, key, 2 * clients + 4)

    async def client() -> None:
        while not queue.empty():
            prompt = queue.get_nowait()
            sent = time.time()
            job_id = await jobs.submit(_job_body(prompt, new_tokens))
            timeline: dict[str, Any] = {"id": job_id, "sent": sent, "posted": time.time(), "first": None}
            async with contextlib.aclosing(jobs.event_kinds(timeline["id"])) as kinds:  # the stream closes here
                async for kind in kinds:
                    if kind == "token" and timeline["first"] is None:
                        timeline["first"] = time.time()
                    if kind == "end":
                        break
            timeline["end"] = time.time()
            timeline["first"] = timeline["first"] or timeline["end"]
            timelines.append(timeline)

    try:
        await asyncio.gather(*[client() for _ in range(max(1, clients))])
    finally:
        await jobs.close()
    ended = time.time()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600) as api:
        reading = asyncio.Semaphore(16)

        async def read_record(timeline: dict) -> None:
            async with reading:
                job = (await api.get(f"/v1/jobs/{timeline['id']}")).json()
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {timeline['id']} {job['status']}: {job.get('error')}")
            timeline["tokens"] = job["usage"]["completion_tokens"]
            timeline.update(job["timings"])  # queued_at, started_at, first_token_at, finished_at, engine_*

        await asyncio.gather(*[read_record(timeline) for timeline in timelines])
    return timelines, ended


def _where_time_goes(timelines: list[dict]) -> dict:
    """p50 of each stretch of a request's way, in ms (the client's clock and the job record's, one host)."""
    stretches = {
        "submit_http": ("sent", "posted"),
        "queued_to_started": ("queued_at", "started_at"),
        "started_to_first_token": ("started_at", "first_token_at"),
        # its parts, by the engine's times (native engine): the worker and the pipe to the engine's process, the
        # wait for a step to take the prompt, that step (and any before the first token), the way back
        "started_to_engine": ("started_at", "engine_received_at"),
        "engine_received_to_scheduled": ("engine_received_at", "engine_scheduled_at"),
        "engine_scheduled_to_first_token": ("engine_scheduled_at", "engine_first_token_at"),
        "engine_first_token_to_worker": ("engine_first_token_at", "first_token_at"),
        "first_token_to_client": ("first_token_at", "first"),
        "finished_to_client_end": ("finished_at", "end"),
    }
    return {
        name: round(1000 * _p([t[to] - t[since] for t in timelines if t.get(since) and t.get(to)], 0.5), 2)
        for name, (since, to) in stretches.items()
        if any(t.get(since) and t.get(to) for t in timelines)
    }


def _client_share(
    url: str, prompts: list[str], new_tokens: int, clients: int, http: HttpClient, ready, go, results
) -> None:
    """One client process's share of a level: ready, wait for the common start, run, report."""
    ready.put(os.getpid())
    go.wait()
    cpu = time.process_time()
    try:
        timelines, ended = asyncio.run(_platform_clients(url, prompts, new_tokens, clients, http))
        results.put((timelines, ended, time.process_time() - cpu, None))
    except Exception as exc:  # the parent raises it
        results.put(([], time.time(), time.process_time() - cpu, repr(exc)))


def _platform_level(
    url: str,
    prompts: list[str],
    new_tokens: int,
    clients: int,
    requests: int,
    processes: int,
    http: HttpClient,
    watched: dict,
) -> dict:
    """`requests` jobs by `clients` REST clients speaking `http`, spread over `processes` client processes (one
    Python process parsing 64 SSE streams can itself become the bottleneck, which a real fleet of users never
    is), with the CPU each watched process used during the level, in cores."""
    chosen = [prompts[i % len(prompts)] for i in range(requests)]
    processes = max(1, min(processes, clients))
    if processes == 1:
        before = {name: cpu_seconds(watch) for name, watch in watched.items()}
        cpu, started = time.process_time(), time.time()
        timelines, ended = asyncio.run(_platform_clients(url, chosen, new_tokens, clients, http))
        client_cpu = time.process_time() - cpu
    else:
        context = multiprocessing.get_context("spawn")
        ready, results, go = context.Queue(), context.Queue(), context.Event()
        shares = [
            context.Process(
                target=_client_share,
                args=(
                    url,
                    chosen[k::processes],
                    new_tokens,
                    clients // processes + (k < clients % processes),
                    http,
                    ready,
                    go,
                    results,
                ),
                daemon=True,
            )
            for k in range(processes)
        ]
        for share in shares:
            share.start()
        for _ in shares:
            ready.get(timeout=120)
        before = {name: cpu_seconds(watch) for name, watch in watched.items()}
        started = time.time()
        go.set()
        timelines, ends, client_cpu = [], [], 0.0
        for _ in shares:
            share_timelines, end, share_cpu, error = results.get(timeout=3600)
            if error:
                raise RuntimeError(f"a client process failed: {error}")
            timelines += share_timelines
            ends.append(end)
            client_cpu += share_cpu
        for share in shares:
            share.join(timeout=30)
        ended = max(ends)
    wall = ended - started
    busy = {name: round((cpu_seconds(watch) - before[name]) / wall, 2) for name, watch in watched.items()}
    tokens = [t["tokens"] for t in timelines]
    return {
        **_summary(wall, tokens, [t["first"] - t["sent"] for t in timelines]),
        "started_at": round(started, 3),
        "where_time_goes_ms_p50": _where_time_goes(timelines),
        "client_processes": processes,
        "http_client": http,
        "cpu_cores_busy": {**busy, "bench_clients": round(client_cpu / wall, 2)},
    }


def cpu_seconds(watch: tuple[int, str]) -> float:
    """User + system CPU seconds, as of now, of process `pid` (`which` = "self"), of its descendants
    ("children") or of both ("all"); processes gone count 0."""
    pid, which = watch
    total = 0.0
    try:
        root = psutil.Process(pid)
        family = ([root] if which != "children" else []) + (root.children(recursive=True) if which != "self" else [])
    except psutil.NoSuchProcess:
        return 0.0
    for process in family:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def through_platform(
    prompts: list[str],
    new_tokens: int,
    levels: list[int],
    requests,
    redis_url: str,
    logs: Any = None,
    extra_env: dict[str, str] | None = None,
    client_processes: int = 1,
    http: HttpClient = "aiohttp",
) -> dict:
    """The same workload as REST jobs on a private API and worker (the settings' engine, `extra_env` over them),
    the clients spread over `client_processes` processes, speaking `http`."""
    redis.Redis.from_url(redis_url).flushdb()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "VIREO_API_KEY": KEY,
        "VIREO_QUEUE": f"ratio-{uuid.uuid4().hex[:6]}",
        "VIREO_RATE_LIMIT_RPM": "0",  # the platform's own cost, no limits in the way
        "VIREO_MAX_CONCURRENT_JOBS": "0",
        "VIREO_WORKER_CONCURRENCY": str(max(levels) + 8),
        **(extra_env or {}),
    }
    api = start(vireo_command("serve", "api", "--port", str(port)), env, logs and logs / "api.log")
    worker = start(vireo_command("serve", "worker"), env, logs and logs / "worker.log")
    try:
        wait_http_ok(f"{url}/healthz", 300, "the API", api)
        wait_worker_ready(redis_url, 900, worker)
        # the CPU each process uses during a level, in cores: the API (all its processes), the worker's own
        # process, and its children (the engine's process where it has one)
        watched = {"api": (api.pid, "all"), "worker": (worker.pid, "self"), "worker_children": (worker.pid, "children")}
        level = functools.partial(_platform_level, url, processes=client_processes, http=http, watched=watched)
        level(warm_prompts(prompts), new_tokens, WARM_CLIENTS, WARM_REQUESTS)  # warm-up

        def engine_numbers() -> dict:
            time.sleep(STATS_SETTLE_S)
            return httpx.get(f"{url}/v1/engine/stats", headers={"Authorization": f"Bearer {KEY}"}).json()

        results = {}
        by_level = prompts_by_level(prompts, levels, requests)
        for c in levels:  # as for the engine alone: a warm round at each level first
            level(warm_prompts(by_level[c]), new_tokens, c, c)
            before, kernels = engine_numbers(), triton_cache_entries()
            results[c] = level(by_level[c], new_tokens, c, requests(c))
            results[c]["steps"] = step_tally(before, engine_numbers())
            results[c]["triton_kernels_compiled"] = triton_cache_entries() - kernels
        return results
    finally:
        stop([api, worker], grace_s=20)


def run_engine_ratio(
    levels: list[int],
    prompt_tokens: int = 128,
    new_tokens: int = 128,
    rounds: int = 2,
    logs: Any = None,
    in_worker_too: bool = False,
    client_processes: int = 1,
    http: HttpClient = "aiohttp",
) -> dict:
    """Engine alone, then the platform (and, with `in_worker_too`, the platform with the engine inside the
    worker's process), on one machine in one run; `rounds` × concurrency requests a level; the REST clients
    speak `http` (rest_clients.py)."""

    def requests(clients: int) -> int:
        return max(8, rounds * clients)  # at one client, eight TTFTs for its p50

    settings = Settings()
    redis_url = os.environ.get("VIREO_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    resolved = settings.for_worker().engine.resolved()
    gpu = resolved.device == "cuda"
    started = time.time()
    prompts, alone, info = asyncio.run(engine_alone(settings, prompt_tokens, new_tokens, levels, requests))
    platform = through_platform(prompts, new_tokens, levels, requests, redis_url, logs, None, client_processes, http)
    in_worker = (
        through_platform(
            prompts,
            new_tokens,
            levels,
            requests,
            redis_url,
            logs,
            {"VIREO_OWN_PROCESS": "false"},
            client_processes,
            http,
        )
        if in_worker_too and resolved.own_process
        else None
    )
    by_level = []
    for c in levels:
        level = {
            "concurrency": c,
            "engine": alone[c],
            "platform": platform[c],
            "platform_over_engine_tok_s": round(platform[c]["tok_s"] / alone[c]["tok_s"], 3),
            "ttft_overhead_ms_p50": round(platform[c]["ttft_p50_ms"] - alone[c]["ttft_p50_ms"], 2),
        }
        if in_worker is not None:
            level["platform_engine_in_worker"] = in_worker[c]
            level["engine_in_worker_over_engine_tok_s"] = round(in_worker[c]["tok_s"] / alone[c]["tok_s"], 3)
        by_level.append(level)
    high = [level for level in by_level if level["concurrency"] >= 32]
    return {
        "benchmark": "platform vs engine (vireo bench platform --engine-ratio)",
        "date": time.strftime("%Y-%m-%d"),
        "commit": source_commit(),
        "machine": {**machine_info(gpu=gpu), "load_average_at_end": load_average()},
        "engine": {**info, "settings": settings.for_worker().engine.model_dump(mode="json", exclude={"home"})},
        "worker_engine": "in a process of its own" if resolved.own_process else "in the worker's process",
        "workload": {
            "prompt_tokens": prompt_tokens,
            "new_tokens": new_tokens,
            "sampling": "greedy, ignore_eos",
            "requests_per_level": {c: requests(c) for c in levels},
            "client_processes": client_processes,
            "http_client": http,
            "platform_path": "POST /v1/jobs (chat app, raw prompt) → Celery on Redis → worker → SSE events",
        },
        "levels": by_level,
        "goals": GOALS,
        "meets_goals": {
            "tok_s_at_32_and_64": bool(high)
            and all(
                level["platform_over_engine_tok_s"] >= GOALS["platform_over_engine_tok_s_at_32_and_64"]
                for level in high
            ),
            "ttft_overhead_ms_p50": statistics.median(level["ttft_overhead_ms_p50"] for level in by_level)
            <= GOALS["ttft_overhead_ms_p50"],
        },
        "seconds": round(time.time() - started, 1),
    }
