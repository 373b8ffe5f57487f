"""The platform's commands: serve, run, worker-health, models, quantize, keys. The `vireo` console script
(`vireo/cli.py`) adds the tooling commands (bench, eval, drills) to these."""

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
app.add_typer(serve, name="serve")
app.add_typer(models, name="models")
app.add_typer(keys, name="keys")


def _settings():
    from vireo.platform.settings import get_settings

    return get_settings()


@serve.command("api")
def serve_api(host: str = "127.0.0.1", port: int = 8000) -> None:
    """The REST API (FastAPI under uvicorn)."""
    import uvicorn

    from vireo.platform.api.app import create_app
    from vireo.platform.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn's own logging off: its lines go through ours, and the API logs each request itself
    if settings.api_workers > 1:  # processes of their own, each building the app from the environment
        uvicorn.run(
            "vireo.platform.api.app:create_app",
            factory=True,
            workers=settings.api_workers,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)


@serve.command("worker")
def serve_worker(
    concurrency: Optional[int] = None,
    loglevel: Optional[str] = typer.Option(None, help="Default: VIREO_LOG_LEVEL."),
    model: Optional[str] = typer.Option(
        None, help="The served model (one of VIREO_MODELS) this worker runs; default: the first."
    ),
) -> None:
    """One Celery worker holding one engine for one model (threads pool: many jobs share the engine); it
    takes that model's jobs from the model's own queue."""
    from vireo.platform.tasks import celery_app, serve_settings

    settings = _settings()
    if model is not None:
        if model not in settings.served_models:
            raise typer.BadParameter(f"{model!r} is not among VIREO_MODELS ({', '.join(settings.served_models)})")
        settings = settings.model_copy(update={"worker_model": model})
    settings = serve_settings(settings.for_worker())  # the runtime this process builds uses these
    quiet = ["--quiet"] if settings.log_format == "json" else []  # no banner on stdout: every line is JSON
    celery_app.worker_main(
        [
            *quiet,
            "worker",
            "-P",
            "threads",
            "-c",
            str(concurrency or settings.worker_concurrency),
            "-Q",
            settings.queue,
            "--loglevel",
            loglevel or settings.log_level,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )


@serve.command("ui")
def serve_ui(host: str = "127.0.0.1", port: int = 8501) -> None:
    """The Streamlit UI (it talks to the REST API only)."""
    ui = Path(__file__).resolve().parent.parent / "ui" / "app.py"
    # Streamlit refuses larger uploads outright (its default: 200 MB); the pages tell each uploader the
    # finer limit the API reports (vireo/ui/upload_limit.py)
    upload_mb = -(-_settings().max_body_bytes // 2**20)
    # exec, not a child process: SIGTERM (docker stop, a test's teardown) must reach Streamlit itself
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ui),
            "--server.port",
            str(port),
            "--server.address",
            host,
            "--server.headless",
            "true",
            "--server.maxUploadSize",
            str(upload_mb),
            "--browser.gatherUsageStats",
            "false",
        ],
    )


@serve.command("sandbox")
def serve_sandbox(
    socket: Path = typer.Option(..., help="The Unix socket to listen on (a volume shared with the worker)."),
    isolation: str = typer.Option(
        "auto",
        help="auto: bubblewrap where it works, else rlimits inside this (locked-down) container; bwrap; rlimits.",
    ),
    concurrency: int = typer.Option(4, min=1, help="Programs run at once."),
) -> None:
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
    """Exit 0 while a worker on this host beats on its model's queue (VIREO_WORKER_MODEL, default the first of
    VIREO_MODELS); else 1 with the reason (a container healthcheck)."""
    import asyncio
    import socket

    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    from vireo.platform.fleet import live_workers

    settings, host = _settings().for_worker(), socket.gethostname()  # VIREO_WORKER_MODEL's queue

    async def beating() -> list:
        client = aioredis.from_url(
            settings.redis_url, decode_responses=True, socket_connect_timeout=3, socket_timeout=3
        )
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
        typer.echo(
            f"unhealthy: no worker on host {host} beats on queue {settings.queue} (still loading its "
            f"model, hung, or stopped; {len(workers)} live elsewhere)",
            err=True,
        )
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
        typer.echo(
            f"{name:22} installed={info['installed']!s:5} converted={info['converted']!s:5} "
            f"{info.get('description', '')}"
        )
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


@app.command("quantize")
def quantize(
    model: str = typer.Argument("smollm2-135m", help="A registry name, .gguf file or model folder."),
    method: str = "gptq",
    bits: int = 4,
    group_size: int = 128,
    out: Optional[Path] = None,
) -> None:
    """Write an int8/int4 checkpoint (RTN, AWQ or GPTQ) that the native engine and vLLM both load."""
    from vireo.inference.quant.quantize import main as quantize_main

    out = out or _settings().home / "models" / f"{Path(model).name}-{method}-w{bits}g{group_size}"
    quantize_main([model, "--method", method, "--bits", str(bits), "--group-size", str(group_size), "--out", str(out)])


def run_cli(cli: typer.Typer) -> None:
    """Known failures end in one line saying what to do, not a traceback."""
    from vireo.inference.api import EngineError
    from vireo.inference.registry import ModelIntegrityError

    try:
        cli()
    except (EngineError, ModelIntegrityError, FileNotFoundError, NotADirectoryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()
