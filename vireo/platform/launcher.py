"""`make run` / `vireo run`: Redis (found or started), the API, one worker and the UI, until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from vireo.platform.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def start_embedded_redis() -> tuple[str, subprocess.Popen]:
    """A private redis-server on a free port that keeps nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("no Redis answers on 127.0.0.1:6379 and redis-server is not installed: "
                 "install it (apt-get install redis-server) or set REDIS_URL")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tempfile.gettempdir()],
                            stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        if redis_answers(url):
            return url, proc
        time.sleep(0.1)
    proc.terminate()
    sys.exit("the embedded redis-server did not start")


def choose_redis(settings: Settings) -> tuple[str, subprocess.Popen | None]:
    if os.environ.get("REDIS_URL") or os.environ.get("VIREO_REDIS_URL"):
        return settings.redis_url, None
    if redis_answers("redis://127.0.0.1:6379/0"):
        return "redis://127.0.0.1:6379/0", None
    return start_embedded_redis()


def api_key(settings: Settings) -> str:
    """VIREO_API_KEY if set, else a random key kept in the Vireo home so it survives restarts."""
    if os.environ.get("VIREO_API_KEY"):
        return os.environ["VIREO_API_KEY"]
    path = settings.home / "api-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a process exited early (code {proc.returncode}); see its output above")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not become healthy in {timeout:.0f}s")


def run_all(settings: Settings) -> None:
    from vireo.inference.registry import ModelRegistry

    print(f"preparing model {settings.model} ...", flush=True)
    if settings.engine != "openai":
        ModelRegistry(settings.home).resolve(settings.model)
    redis_url, redis_proc = choose_redis(settings)
    key = api_key(settings)
    env = {**os.environ, "REDIS_URL": redis_url, "VIREO_API_KEY": key,
           "VIREO_API_URL": f"http://{settings.api_host}:{settings.api_port}"}
    vireo = [sys.executable, "-m", "vireo.platform.cli"]
    procs = [p for p in [redis_proc] if p]
    try:
        api = subprocess.Popen(vireo + ["serve", "api", "--host", settings.api_host,
                                        "--port", str(settings.api_port)], env=env)
        procs.append(api)
        procs.append(subprocess.Popen(vireo + ["serve", "worker"], env=env))
        procs.append(subprocess.Popen(vireo + ["serve", "ui", "--port", str(settings.ui_port)], env=env))
        wait_healthy(f"http://{settings.api_host}:{settings.api_port}/healthz", api, 120)
        print(_banner(settings, redis_url, key), flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process stopped; shutting down the rest", flush=True)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        _stop(procs)


def _banner(settings: Settings, redis_url: str, key: str) -> str:
    api = f"http://{settings.api_host}:{settings.api_port}"
    return (f"\nVireo is running ({settings.engine} engine, model {settings.model})\n"
            f"  UI        http://127.0.0.1:{settings.ui_port}\n"
            f"  API       {api}   (docs: {api}/docs)\n"
            f"  Redis     {redis_url}\n"
            f"  API key   {key}\n"
            f"  try:      curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
            f"-d '{{\"app\":\"summarize\",\"input\":{{\"text\":\"...\"}}}}' {api}/v1/jobs\n"
            "Press Ctrl-C to stop everything.\n")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 10
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
