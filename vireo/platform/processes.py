"""Start a process, wait until it is healthy, stop it.

The one launcher behind `make run` (launcher.py), the eval harness's private platform, the drills'
and benchmarks' stacks and the tests' fixtures: Vireo's services are started as
`python -m vireo.platform.cli serve ...`, as `make run` starts them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import httpx
import redis

from vireo.platform.redis_keys import STATS_KEY


class NotHealthy(RuntimeError):
    """A started process exited, or did not become healthy in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vireo_command(*args: str) -> list[str]:
    """`vireo <args>` as this interpreter runs the platform's commands (serve api/worker/ui/sandbox ...)."""
    return [sys.executable, "-m", "vireo.platform.cli", *args]


def start(
    command: list[str],
    env: dict | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
    own_group: bool = False,
    quiet: bool = False,
    **popen,
) -> subprocess.Popen:
    """Start `command`; its stdout and stderr go to `log` (appended), nowhere (`quiet`), or stay on ours.

    `own_group`: a session of its own, so `stop(..., group=True)` or a drill's `os.killpg` reaches its
    children too, and a Ctrl-C at the terminal does not.
    """
    log_file = open(log, "a") if log else None
    out = log_file if log_file is not None else (subprocess.DEVNULL if quiet else None)
    try:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=own_group,
            **popen,
        )
    finally:
        if log_file is not None:
            log_file.close()  # the child holds its own copy


def log_tail(log: Path | None, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log and log.exists() else ""


def wait_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `check` until it returns something true; an exception from it means "not yet".

    Raises NotHealthy when `proc` exits first or `timeout` seconds pass, with `log`'s tail.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise NotHealthy(f"{what} exited (code {proc.returncode}) before it was ready\n{log_tail(log)}")
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise NotHealthy(f"{what} was not ready within {timeout:.0f}s\n{log_tail(log)}")


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_http_ok(
    url: str, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None
) -> None:
    """Until `url` answers 200 (a /healthz)."""
    wait_until(lambda: http_ok(url), timeout, what, proc, log)


def wait_worker_ready(
    redis_url: str,
    timeout: float,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
    what: str = "the worker",
) -> None:
    """Until a worker has loaded its engine: it publishes the engine's stats in Redis once it has."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        wait_until(lambda: client.exists(STATS_KEY), timeout, what, proc, log, interval=0.3)
    finally:
        client.close()


def stop(procs: Iterable[subprocess.Popen | None], grace_s: float = 15, group: bool = False) -> None:
    """SIGTERM to each (the last started first), then wait up to `grace_s` in all; SIGKILL what is left.

    `group`: signal each process's whole group (those started with `own_group`).
    """
    started = [p for p in procs if p is not None]
    for proc in reversed(started):
        _signal(proc, signal.SIGTERM, group)
    deadline = time.monotonic() + grace_s
    for proc in started:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL, group)
            proc.wait(10)


def _signal(proc: subprocess.Popen, sig: int, group: bool) -> None:
    if proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass
