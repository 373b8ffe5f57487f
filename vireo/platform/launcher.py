"""`make run` / `vireo run`: Redis (found or started), the API, one worker per served model and the UI, until Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import redis

from vireo.platform.processes import NotHealthy, free_port, start, stop, vireo_command, wait_http_ok, wait_until
from vireo.platform.served_model import served_models
from vireo.platform.settings import Settings


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_keeps(url: str) -> str:
    """What a Redis keeps across a restart: "aof", "snapshots", "nothing", or "unknown" (CONFIG refused)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, decode_responses=True)
    try:
        appendonly = client.config_get("appendonly").get("appendonly")
        save = client.config_get("save").get("save")
    except redis.RedisError:
        return "unknown"
    if appendonly == "yes":
        return "aof"
    return "snapshots" if save else "nothing"


def embedded_redis_command(binary: str, port: int, data_dir: Path) -> list[str]:
    """redis-server on 127.0.0.1 appending every write to its AOF in `data_dir`, fsynced every second."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--pidfile",
        str(data_dir / "redis.pid"),
        "--logfile",
        str(data_dir / "redis.log"),
    ]


def _lock_data_dir(data_dir: Path) -> int:
    """An exclusive lock on the data folder, inherited by redis-server: two servers on one AOF corrupt it."""
    fd = os.open(data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        sys.exit(
            f"another redis-server already uses {data_dir} (its pid is in {data_dir / 'redis.pid'}): "
            "stop it, or point REDIS_URL at it"
        )
    return fd


def start_embedded_redis(
    data_dir: Path, port: int | None = None, timeout_s: float = 120
) -> tuple[str, subprocess.Popen]:
    """A private redis-server whose data survives restarts: AOF in `data_dir` (readable by this user only)."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit(
            "no usable Redis on 127.0.0.1:6379 and redis-server is not installed: "
            "install it (apt-get install redis-server) or set REDIS_URL"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # the AOF holds every tenant's jobs
    lock = _lock_data_dir(data_dir)
    port = port or free_port()
    try:
        # its own session: Ctrl-C reaches the API and worker, and Redis stays up while the worker drains
        proc = subprocess.Popen(
            embedded_redis_command(binary, port, data_dir),
            stdout=subprocess.DEVNULL,
            pass_fds=(lock,),
            start_new_session=True,
        )
    finally:
        os.close(lock)  # redis-server holds its inherited copy of the lock for as long as it runs
    url = f"redis://127.0.0.1:{port}/0"
    log = data_dir / "redis.log"
    try:  # a long AOF takes a while to load; PING fails until it has
        wait_until(lambda: redis_answers(url), timeout_s, "the embedded redis-server", proc, log, interval=0.1)
    except NotHealthy as exc:
        stop([proc])
        sys.exit(f"the embedded redis-server did not start (log {log}): {exc}")
    return url, proc


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class RedisChoice:
    url: str
    proc: subprocess.Popen | None  # the redis-server make run started, if it started one
    notes: list[str]  # what the banner must say about durability


def choose_redis(settings: Settings, local_url: str = "redis://127.0.0.1:6379/0") -> RedisChoice:
    """REDIS_URL if set; else the Redis at `local_url` unless it keeps nothing; else our own durable one.

    A Redis that keeps nothing (no AOF, no snapshots) loses every queued job when it restarts, so make
    run starts its own rather than use it. Our own listens on `local_url`'s port when that is free, so
    `vireo` commands with the default REDIS_URL reach it.
    """
    data_dir = settings.home / "redis"
    if "redis_url" in settings.model_fields_set:  # REDIS_URL / VIREO_REDIS_URL named one
        return RedisChoice(settings.redis_url, None, durability_notes(settings.redis_url))
    if redis_answers(local_url):
        if redis_keeps(local_url) != "nothing":
            return RedisChoice(local_url, None, durability_notes(local_url))
        url, proc = start_embedded_redis(data_dir)
        return RedisChoice(
            url,
            proc,
            [
                f"the Redis at {local_url} keeps nothing (no AOF, no snapshots), so it is not used: jobs "
                f"would not survive its restart. Vireo started its own durable Redis (AOF in {data_dir}).",
                f"for `vireo` commands (e.g. `vireo keys`) against this Redis: export REDIS_URL={url}",
                f"to use {local_url} instead, make it durable (redis-cli CONFIG SET appendonly yes && "
                "redis-cli CONFIG REWRITE, or appendonly yes in its redis.conf) or set REDIS_URL to it",
            ],
        )
    port = urlparse(local_url).port or 6379
    url, proc = start_embedded_redis(data_dir, port if port_is_free(port) else None)
    return RedisChoice(url, proc, [])


def durability_notes(url: str) -> list[str]:
    """Plain warnings for a Redis we were told to use that may lose jobs when it restarts."""
    fix = (
        f"to fix it: redis-cli -u {url} CONFIG SET appendonly yes && redis-cli -u {url} CONFIG REWRITE "
        "(or appendonly yes + appendfsync everysec in its redis.conf)"
    )
    keeps = redis_keeps(url)
    if keeps == "nothing":
        return [
            f"WARNING: the Redis at {url} keeps nothing (no AOF, no snapshots): queued and running "
            "jobs will NOT survive a Redis restart.",
            fix,
        ]
    if keeps == "snapshots":
        return [
            f"note: the Redis at {url} keeps snapshots only (no AOF): jobs since its last snapshot are "
            "lost if it crashes.",
            fix,
        ]
    if keeps == "unknown":
        return [
            f"note: could not check whether the Redis at {url} keeps its data (CONFIG GET refused); "
            "jobs survive a Redis restart only if it runs with appendonly yes"
        ]
    return []


def api_key(settings: Settings) -> str:
    """VIREO_API_KEY if set, else a random key kept in the Vireo home so it survives restarts."""
    if "api_key" in settings.model_fields_set and settings.api_key:
        return settings.api_key
    path = settings.home / "api-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def default_pool_environment(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Where the deployment names no models: the default pool for this machine (default_pool.py), said
    aloud, as settings and as the variables its processes get."""
    import psutil

    from vireo.platform.default_pool import choose_default_pool, user_named_models

    if user_named_models(settings):
        return settings, {}
    choice = choose_default_pool(settings, psutil.virtual_memory().available)
    print(f"models: {', '.join(choice.models)}: {choice.reason}", flush=True)
    if choice.models == [settings.default_model]:
        return settings, {}
    env = choice.environment()
    return Settings(
        models=env["VIREO_MODELS"], app_models=env["VIREO_APP_MODELS"], model_engines=choice.model_engines
    ), env


def run_all(settings: Settings) -> None:
    from vireo.inference.registry import ModelRegistry

    settings, pool_env = default_pool_environment(settings)
    for model in settings.served_models:
        if settings.engine_for(model).backend != "openai":
            print(f"preparing model {model} ...", flush=True)
            ModelRegistry(settings.home).resolve(model)
    redis_choice = choose_redis(settings)
    signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
    key = api_key(settings)
    env = {
        **os.environ,
        **pool_env,
        "REDIS_URL": redis_choice.url,
        "VIREO_API_KEY": key,
        "VIREO_API_URL": f"http://{settings.api_host}:{settings.api_port}",
    }
    procs: list[subprocess.Popen] = []
    try:
        api = start(vireo_command("serve", "api", "--host", settings.api_host, "--port", str(settings.api_port)), env)
        procs.append(api)
        for model in settings.served_models:  # one worker per served model, on that model's queue
            procs.append(start(vireo_command("serve", "worker", "--model", model), env))
        procs.append(start(vireo_command("serve", "ui", "--port", str(settings.ui_port)), env))
        try:
            wait_http_ok(f"http://{settings.api_host}:{settings.api_port}/healthz", 120, "the API", api)
        except NotHealthy as exc:
            raise SystemExit(f"{exc}; see its output above") from None
        print(_banner(settings, redis_choice, key), flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process stopped; shutting down the rest", flush=True)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        # the worker hands unfinished jobs back after its drain timeout: give it that long, and more
        stop(procs, grace_s=settings.drain_timeout_s + 10)
        stop([redis_choice.proc], grace_s=10)  # last: a draining worker still needs it


def _banner(settings: Settings, redis_choice: RedisChoice, key: str) -> str:
    api = f"http://{settings.api_host}:{settings.api_port}"
    kept = f"   (AOF in {settings.home / 'redis'})" if redis_choice.proc else ""
    notes = "".join(f"  ! {note}\n" for note in redis_choice.notes)
    models = []
    for served in served_models(settings):
        source = f" from {served.configured}" if served.configured != served.name else ""
        backend = settings.engine_for(served.configured).backend
        models.append(f"{served.name}{source} ({backend} engine{', default' if served.is_default else ''})")
    return (
        "\nVireo is running\n"
        f"  models    {'; '.join(models)}\n"
        f"  UI        http://127.0.0.1:{settings.ui_port}\n"
        f"  API       {api}   (docs: {api}/docs)\n"
        f"  Redis     {redis_choice.url}{kept}\n{notes}"
        f"  API key   {key}\n"
        f"  try:      curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
        f'-d \'{{"app":"summarize","input":{{"text":"..."}}}}\' {api}/v1/jobs\n'
        "Press Ctrl-C to stop everything.\n"
    )


def _stop_like_ctrl_c(signum, frame) -> None:
    """SIGTERM (kill, systemd, a container stop) takes Ctrl-C's path: everything started is stopped."""
    raise KeyboardInterrupt
