"""Shared fixtures: a real Redis, a real Celery worker and a real API server, on the real model.

The platform processes run as subprocesses exactly as `make run` starts them; each test session
gets its own Redis database and queue name so runs never see each other's jobs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

# Triton decides between compiling and interpreting when `triton.language` is first imported, and
# libraries import it early (llguidance's torch helpers do). Without a GPU the interpreter is the only
# way Triton runs, so the whole test session uses it; the kernel tests need it.
if not os.path.exists("/dev/nvidia0") and not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import httpx
import pytest
import pytest_asyncio
import redis
import torch

from vireo.inference.factory import create_engine
from vireo.inference.local import EngineConfig
from vireo.platform.processes import NotHealthy, free_port, start, stop, vireo_command, wait_http_ok, wait_worker_ready

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-key-tenant-a"
OTHER_KEY = "test-key-tenant-b"
TEST_ENGINE = os.environ.get("VIREO_TEST_ENGINE", "native")


@pytest_asyncio.fixture(scope="session")
async def hf_engine():
    """One SmolLM2 engine on the hf backend, shared by every in-process app test."""
    engine = create_engine(EngineConfig(backend="hf", model="smollm2-135m"))
    await engine.start()
    yield engine
    await engine.shutdown()


@pytest.fixture(autouse=True)
def main_module_kept():
    """Streamlit's AppTest installs its script as `sys.modules["__main__"]` and leaves it there; every
    multiprocessing spawn child after it (the engine-process tests) would run that script again as its
    main module ("NameError: name '__args' is not defined"). Each test gets the real one back."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


# `make test TEST_WORKERS=2` runs the files on pytest-xdist workers (`--dist loadfile`: a file's tests stay on one):
# each worker's shared platform gets a Redis database of its own. Files that name a database of their own
# (4-10, 12-14, one each) keep it: one worker runs each of them.
WORKER_DATABASES = (11, 15, 0, 1, 2, 3)


def worker_redis_url() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw"))
    if index >= len(WORKER_DATABASES):
        pytest.fail(f"{index + 1} pytest-xdist workers: the tests have Redis databases for {len(WORKER_DATABASES)}")
    return f"redis://127.0.0.1:6379/{WORKER_DATABASES[index]}"


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("VIREO_TEST_REDIS_URL") or worker_redis_url()
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {url} does not answer ({exc}); .ci/run starts it")
    client.flushdb()
    return url


@pytest.fixture(scope="session")
def platform_env(redis_url, tmp_path_factory) -> dict[str, str]:
    """Environment for the platform subprocesses (one queue per test session)."""
    return {
        **{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},  # subprocesses run as in production
        "REDIS_URL": redis_url,
        "VIREO_API_KEY": API_KEY,
        "VIREO_API_KEYS": f"{OTHER_KEY}:tenant-b",
        "VIREO_ENGINE": TEST_ENGINE,
        "VIREO_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "VIREO_WORKER_CONCURRENCY": "8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }


def _spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return start(vireo_command(*args), env, log, ROOT)


def _stop(proc: subprocess.Popen) -> None:
    stop([proc])


@pytest.fixture(scope="session")
def celery_worker(platform_env, redis_url, tmp_path_factory):
    """A real Celery worker holding the real engine; ready once it publishes engine stats."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    client = redis.Redis.from_url(redis_url)
    client.delete("vireo:engine:stats")
    proc = _spawn(["serve", "worker", "--loglevel", "info"], platform_env, log)
    try:
        wait_worker_ready(redis_url, 240, proc, log)
    except NotHealthy as exc:
        _stop(proc)
        pytest.fail(f"worker did not start: {exc}")
    yield proc
    _stop(proc)


def wait_until_healthy(
    proc: subprocess.Popen, health_url: str, log: Path, what: str, timeout: float, stop=None
) -> None:
    """Poll `health_url` until it answers 200; stop the process and fail with its log if not."""
    try:
        wait_http_ok(health_url, timeout, what, proc, log)
    except NotHealthy as exc:
        (stop or _stop)(proc)
        pytest.fail(f"{what} did not start: {exc}")


def start_api(env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = _spawn(["serve", "api", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, f"{url}/healthz", log, "API", 180)
    return proc, url


@pytest.fixture(scope="session")
def api_server(platform_env, tmp_path_factory):
    """The REST API as a real uvicorn server on a free port; yields its base URL."""
    proc, url = start_api(platform_env, tmp_path_factory.mktemp("api") / "api.log")
    yield url
    _stop(proc)


@pytest.fixture(scope="session")
def api(api_server, celery_worker) -> httpx.Client:
    """An authenticated client for tenant A, with a worker serving jobs."""
    with httpx.Client(base_url=api_server, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def other_tenant(api_server) -> httpx.Client:
    with httpx.Client(base_url=api_server, headers={"Authorization": f"Bearer {OTHER_KEY}"}, timeout=60) as c:
        yield c


# Test tiers. pyproject.toml registers the markers; `make test-fast` deselects slow, stack and browser.
# A test's tier follows from the fixtures it uses (directly or through other fixtures), so a new test
# lands in its tier by itself; tests that start processes without these fixtures say so in `pytestmark`.
TIER_OF_FIXTURE = {
    "api_server": "stack",
    "celery_worker": "stack",  # the API and a worker as subprocesses
    "stack": "stack",  # the drills' Stack (redis-server, API, workers), used by platform tests too
    "browser": "browser",  # headless Chromium
    # the packaged SmolLM2 (or a vision model) loaded into an engine: seconds to load, slow to run on CPU
    "hf_engine": "slow",
    "engine": "slow",
    "hf_reference": "slow",
    "shared_model": "slow",
    "hf": "slow",
    "fp32_model": "slow",
    "vision": "slow",
    "hermes_engine": "slow",
    "triton_on": "slow",  # Triton kernels through its interpreter: seconds a case
    "gguf": "slow",  # a GGUF file converted in the test: tens of seconds
}
VLLM_BACKENDS = ("vllm", "openai")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        for fixture in item.fixturenames:
            if tier := TIER_OF_FIXTURE.get(fixture):
                item.add_marker(tier)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("engine") in VLLM_BACKENDS:
            item.add_marker("vllm")
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA (no GPU on this machine)"))
