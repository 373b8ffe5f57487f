"""Runners execute one app job for an eval: `runner(app_name, input_dict, options) -> output_dict`.

`local_runner` runs apps in this process on a given engine (fast to iterate, no services);
`rest_runner` goes through the real REST job path (submit, poll until terminal);
`open_runner(config, kind)` gives either one for an eval configuration.
Both raise `JobFailed` with the platform's message when a job does not succeed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

Runner = Callable[[str, dict, dict], dict]


class JobFailed(RuntimeError):
    """A job ended failed or cancelled, or its input was refused."""


def builtin_app(name: str):
    """An app instance by name: registered entry points first, then the built-in modules."""
    from importlib import import_module

    from vireo.apps.registry import UnknownAppError, get_app

    try:
        return get_app(name)
    except UnknownAppError:
        builtin = {
            "code": "CodeApp",
            "translate": "TranslateApp",
            "summarize": "SummarizeApp",
            "classify": "ClassifyApp",
            "chat": "ChatApp",
            "generate": "GenerateApp",
        }
        if name not in builtin:
            raise
        return getattr(import_module(f"vireo.apps.{name}"), builtin[name])()


class LocalRunner:
    """Runs apps in-process on `engine`; calls from many threads share one event loop, so the
    engine sees them as concurrent requests and can batch them."""

    def __init__(self, engine):
        self.engine = engine
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="eval-loop", daemon=True).start()
        asyncio.run_coroutine_threadsafe(engine.start(), self.loop).result()

    def __call__(self, app_name: str, input_dict: dict, options: dict) -> dict:
        from vireo.apps.base import AppInputError, LocalContext

        app = builtin_app(app_name)
        job_input = app.Input(**input_dict)
        ctx = LocalContext(
            engine=self.engine, app_name=app_name, options=dict(options or {}), preferences=app.preferences
        )

        async def job():
            app.validate_for_engine(job_input, self.engine.context_length, self.engine.count_tokens)
            return await app.run(ctx, job_input)

        try:
            output = asyncio.run_coroutine_threadsafe(job(), self.loop).result()
        except AppInputError as exc:
            raise JobFailed(str(exc)) from exc
        return output.model_dump()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.engine.shutdown(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)


def local_runner(engine) -> LocalRunner:
    return LocalRunner(engine)


def rest_runner(base_url: str, api_key: str, poll_s: float = 0.5, timeout_s: float = 3600) -> Runner:
    """Submit `POST /v1/jobs` and poll `GET /v1/jobs/{id}` until the job is terminal."""
    import httpx

    client = httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=60)

    def run(app_name: str, input_dict: dict, options: dict) -> dict:
        response = client.post("/v1/jobs", json={"app": app_name, "input": input_dict, "options": options or {}})
        if response.status_code >= 400:
            raise JobFailed(f"submit refused ({response.status_code}): {response.text}")
        job_id = response.json()["id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
            if job["status"] == "succeeded":
                return job["result"]
            if job["status"] in ("failed", "cancelled"):
                raise JobFailed(f"job {job_id} {job['status']}: {job.get('error')}")
            time.sleep(poll_s)
        raise JobFailed(f"job {job_id} did not finish within {timeout_s:.0f}s")

    return run


RUNNER_KINDS = ("local", "rest")


@contextmanager
def open_runner(config, kind: str = "local") -> Iterator[Runner]:
    """A runner serving `config` (an `EvalConfig`): `local` builds the engine in this process;
    `rest` starts a private platform (Redis, API, worker) for it and goes through `POST /v1/jobs`."""
    if kind not in RUNNER_KINDS:
        raise ValueError(f"runner {kind!r}: choose one of {', '.join(RUNNER_KINDS)}")
    if kind == "rest":
        from vireo.tools.evals.private_platform import PrivatePlatform

        with PrivatePlatform(config) as platform:
            yield rest_runner(platform.url, platform.api_key)
        return
    from vireo.inference.factory import create_engine
    from vireo.tools.evals.engine_settings import engine_config

    runner = local_runner(create_engine(engine_config(config)))
    try:
        yield runner
    finally:
        runner.close()
