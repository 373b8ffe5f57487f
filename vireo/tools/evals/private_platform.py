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
import tempfile
from pathlib import Path

from vireo.platform.launcher import start_embedded_redis
from vireo.platform.processes import free_port, start, stop, vireo_command, wait_http_ok, wait_worker_ready
from vireo.tools.evals.configs import EvalConfig
from vireo.tools.evals.engine_settings import worker_environment


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
        env = {
            **os.environ,
            **worker_environment(self.config),
            "REDIS_URL": redis_url,
            "VIREO_API_KEY": self.api_key,
            "VIREO_API_KEYS": "",
        }
        worker = self._spawn(["serve", "worker"], env, "worker.log")
        wait_worker_ready(
            redis_url, self.start_timeout_s, worker, self.logs / "worker.log", f"the eval worker for {self.config}"
        )
        api = self._spawn(["serve", "api", "--port", str(port)], env, "api.log")
        self.url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{self.url}/healthz", 180, "the eval API", api, self.logs / "api.log")

    def _spawn(self, args: list[str], env: dict, log_name: str) -> subprocess.Popen:
        proc = start(vireo_command(*args), env, self.logs / log_name)
        self._procs.append(proc)
        return proc

    def _stop(self) -> None:
        stop(self._procs)
        self._procs.clear()
