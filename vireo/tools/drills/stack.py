"""A private Vireo stack for a drill: its own redis-server, API and workers, each killable.

Everything binds to 127.0.0.1 on free ports; Redis keeps its AOF in the stack's own temp folder,
so a drill can kill and restart any part (`kill -9` a worker, stop Redis) and see what survives.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx
import redis

from vireo.platform.processes import free_port, start, stop, vireo_command, wait_http_ok, wait_until, wait_worker_ready
from vireo.tools.paths import CHECKOUT as ROOT

ADMIN_KEY = "drill-admin-key"
USER_KEY = "drill-user-key-a"
OTHER_KEY = "drill-user-key-b"


class Stack:
    """`with Stack(env={...}) as s:` → s.url, s.client(key), s.kill_worker(i), s.stop_redis() ..."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        workers: int = 1,
        engine: str = "native",
        model: str = "smollm2-135m",
        worker_concurrency: int = 8,
    ):
        self.dir = Path(tempfile.mkdtemp(prefix="vireo-drill-"))
        self.redis_port = free_port()
        self.api_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.n_workers = workers
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
            "REDIS_URL": self.redis_url,
            "VIREO_API_KEY": ADMIN_KEY,
            "VIREO_API_KEYS": f"{USER_KEY}:tenant-a,{OTHER_KEY}:tenant-b",
            "VIREO_ENGINE": engine,
            "VIREO_MODEL": model,
            "VIREO_QUEUE": f"drill-{uuid.uuid4().hex[:8]}",
            "VIREO_WORKER_CONCURRENCY": str(worker_concurrency),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **(env or {}),
        }
        self.redis_proc: subprocess.Popen | None = None
        self.api_proc: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []  # restart_worker replaces one in place
        self.ui_proc: subprocess.Popen | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Stack":
        try:
            self.start_redis()
            self.start_api()
            for _ in range(self.n_workers):
                self.start_worker()
            if self.n_workers:  # workers=0: jobs queue up until the drill starts one
                self.wait_workers_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for proc in [self.ui_proc, *self.workers, self.api_proc]:
            stop([proc], group=True)
        stop([self.redis_proc], group=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self, name: str) -> str:
        path = self.dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # --- Redis -------------------------------------------------------------------------------
    def start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        data = self.dir / "redis"
        data.mkdir(exist_ok=True)
        self.redis_proc = start(
            [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--dir",
                str(data),
            ],
            log=self.dir / "redis.log",
            own_group=True,
        )  # its own process group, which stop_redis signals
        wait_until(lambda: self.redis().ping(), 10, "redis-server", self.redis_proc, self.dir / "redis.log")

    def stop_redis(self, hard: bool = False) -> None:
        if self.redis_proc is not None:
            if hard:
                self.redis_proc.kill()
                self.redis_proc.wait(10)
            else:
                stop([self.redis_proc], group=True)
            self.redis_proc = None

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_connect_timeout=2)

    # --- API ---------------------------------------------------------------------------------
    def start_api(self, timeout: float = 180) -> None:
        self.api_proc = self._spawn(["serve", "api", "--port", str(self.api_port)], "api")
        wait_http_ok(f"{self.url}/healthz", timeout, "the API", self.api_proc, self.dir / "api.log")

    def client(self, key: str = USER_KEY, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)

    # --- workers -----------------------------------------------------------------------------
    def start_worker(self, extra_args: list[str] | None = None) -> int:
        """Start one more worker; returns its index (for kill_worker/restart_worker)."""
        index = len(self.workers)
        self.workers.append(
            self._spawn(["serve", "worker", "--loglevel", "info", *(extra_args or [])], f"worker{index}")
        )
        return index

    def restart_worker(self, index: int) -> None:
        stop([self.workers[index]], group=True)
        self.workers[index] = self._spawn(["serve", "worker", "--loglevel", "info"], f"worker{index}")

    def kill_worker(self, index: int = 0, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process group (kill -9 by default), as a crash or OOM would."""
        proc = self.workers[index]
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGKILL:
                proc.wait(10)

    def wait_workers_ready(self, timeout: float = 240) -> None:
        """Ready once the engine published its stats (the worker loaded its model)."""
        wait_worker_ready(self.redis_url, timeout, log=self.dir / "worker0.log", what="a worker")

    # --- UI ----------------------------------------------------------------------------------
    def start_ui(self, key: str = USER_KEY, timeout: float = 90) -> str:
        """The Streamlit UI on a free port, talking to this stack's API with `key`; returns its URL."""
        port = free_port()
        env = {
            **self.env,
            "VIREO_API_URL": self.url,
            "VIREO_API_KEY": key,
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        }
        self.ui_proc = start(
            vireo_command("serve", "ui", "--port", str(port)), env, self.dir / "ui.log", ROOT, own_group=True
        )
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/_stcore/health", timeout, "the UI", self.ui_proc, self.dir / "ui.log")
        return url

    # --- helpers -----------------------------------------------------------------------------
    def _spawn(self, args: list[str], name: str) -> subprocess.Popen:
        return start(vireo_command(*args), self.env, self.dir / f"{name}.log", ROOT, own_group=True)
