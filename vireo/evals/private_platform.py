"""A private Vireo platform for one eval configuration: its own Redis, API and worker, started as
`vireo run` starts them, so `vireo eval --runner rest` sends every item through the real job path
(submit, queue, worker, store) on exactly the configuration it names.

    with PrivatePlatform(config) as platform:
        result = run_eval("summarize", rest_runner(platform.url, platform.api_key))
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from vireo.evals.configs import EvalConfig
from vireo.evals.engine_settings import worker_environment
from vireo.platform.launcher import free_port, start_embedded_redis, wait_healthy

STATS_KEY = "vireo:engine:stats"  # the worker publishes it once its engine is loaded


class PrivatePlatform:
    """Context manager: Redis, worker and API up on enter (logs in a temp folder), all stopped on exit."""

    def __init__(self, config: EvalConfig, start_timeout_s: float = 600):
        self.config = config
        self.start_timeout_s = start_timeout_s
        self.api_key = secrets.token_urlsafe(16)
        self.logs = Path(tempfile.mkdtemp(prefix="vireo-eval-"))
        self.url = ""
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "PrivatePlatform":
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def _start(self) -> None:
        redis_url, redis_proc = start_embedded_redis(self.logs / "redis")
        self._procs.append(redis_proc)
        port = free_port()
        env = {**os.environ, **worker_environment(self.config), "REDIS_URL": redis_url,
               "VIREO_API_KEY": self.api_key, "VIREO_API_KEYS": ""}
        self._procs.append(self._spawn(["serve", "worker"], env, "worker.log"))
        self._wait_for_worker(redis_url)
        api = self._spawn(["serve", "api", "--port", str(port)], env, "api.log")
        self._procs.append(api)
        self.url = f"http://127.0.0.1:{port}"
        wait_healthy(f"{self.url}/healthz", api, 180)

    def _spawn(self, args: list[str], env: dict, log_name: str) -> subprocess.Popen:
        log = open(self.logs / log_name, "w")
        return subprocess.Popen([sys.executable, "-m", "vireo.platform.cli", *args], env=env,
                                stdout=log, stderr=subprocess.STDOUT)

    def _wait_for_worker(self, redis_url: str) -> None:
        client, worker = redis.Redis.from_url(redis_url), self._procs[-1]
        deadline = time.monotonic() + self.start_timeout_s
        while not client.exists(STATS_KEY):
            if worker.poll() is not None or time.monotonic() > deadline:
                tail = (self.logs / "worker.log").read_text()[-2000:]
                raise RuntimeError(f"the eval worker for {self.config} did not start:\n{tail}")
            time.sleep(0.5)

    def _stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._procs.clear()
