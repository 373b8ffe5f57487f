"""One real engine per backend per test session, on the packaged SmolLM2.

vLLM takes tens of seconds to start, so the engines are session-scoped (pytest groups the tests by
backend and frees each engine before building the next), and the vLLM OpenAI server that the
`openai` backend talks to is launched as soon as collection shows it will be needed, so it boots
while the other backends are being tested.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from vireo.inference.factory import backend_available, create_engine
from vireo.inference.local import EngineConfig
from vireo.inference.registry import ModelRegistry

MODEL = "smollm2-135m"
# native-process: the native engine in a process of its own (engine_process.py), the worker's form on CUDA
BACKENDS = ["hf", "native", "native-process", "vllm", "openai"]
CONTEXT = 2048  # a modest window keeps vLLM's start-up and the too-long test small
SERVER_START_TIMEOUT_S = 420
# One torch thread: the vLLM server boots beside the in-process engines, and two spinning OpenMP
# threads on two shared cores slow down several-fold; vLLM's own worker also computes on one core.
TORCH_THREADS = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """A real `vllm.entrypoints.openai.api_server` on 127.0.0.1, in its own process group."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"vireo-test-vllm-server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def launch(self) -> None:
        model_path = ModelRegistry().resolve(MODEL).path
        inherited = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        env = {
            **inherited,
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        args = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model_path),
            "--served-model-name",
            MODEL,
            "--enforce-eager",
            "--max-model-len",
            str(CONTEXT),
            # vLLM's "auto" downcasts a float32 checkpoint to bfloat16 on CPU; float32 makes the
            # server compute like the hf reference, so equal outputs test the client exactly.
            "--dtype",
            "float32",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.proc = subprocess.Popen(
            args, env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self) -> str:
        deadline = time.time() + SERVER_START_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        pytest.fail(f"vLLM OpenAI server did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group: server, engine core, worker
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


_server: VLLMServer | None = None


def _wants_openai(items) -> bool:
    return any(getattr(item, "callspec", None) and item.callspec.params.get("engine") == "openai" for item in items)


def pytest_collection_finish(session) -> None:
    """Boot the vLLM server early: it starts in the background while other backends are tested."""
    global _server
    if _server is None and backend_available("vllm") and _wants_openai(session.items):
        _server = VLLMServer()
        _server.launch()


def pytest_sessionfinish(session, exitstatus) -> None:
    if _server is not None:
        _server.stop()


def engine_config(backend: str) -> EngineConfig:
    if backend == "openai":
        return EngineConfig(backend="openai", model=MODEL, openai_base_url=_server.wait_ready(), openai_model=MODEL)
    own_process = backend == "native-process"
    return EngineConfig(
        backend="native" if own_process else backend,
        own_process=own_process,
        model=MODEL,
        dtype="float32",
        max_model_len=CONTEXT,
        max_batch=16,
        threads=TORCH_THREADS,
    )


@pytest.fixture(scope="session", params=BACKENDS)
async def engine(request):
    """A started engine of each backend (the same instance for every test of that backend)."""
    backend = request.param  # an engine that fails to import or start fails its tests: only vLLM may be missing
    if backend in ("vllm", "openai") and not backend_available("vllm"):
        pytest.skip("vllm is not installed (pip install 'vireo[vllm]')")
    if backend == "openai" and _server is None:
        pytest.fail("the vLLM server was not launched at collection")
    eng = create_engine(engine_config(backend))
    await eng.start()
    yield eng
    await eng.shutdown()
    if backend == "openai":
        _server.stop()  # free its memory for the rest of the session


@pytest.fixture(scope="session")
async def hf_reference():
    """A float32 hf engine for reference outputs, separate from the parametrized one."""
    eng = create_engine(
        EngineConfig(backend="hf", model=MODEL, dtype="float32", max_model_len=CONTEXT, threads=TORCH_THREADS)
    )
    await eng.start()
    yield eng
    await eng.shutdown()
