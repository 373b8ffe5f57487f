"""Several models at once (issue #16): VIREO_MODELS, each model's own queue and workers, apps' default
models, a job's `model`, and what happens while a model's workers are away.

The settings tests run in-process. The stack tests start one API and real workers, as `make run` does,
on two models: the packaged SmolLM2 and the same weights as a folder of their own (hard links, so no
copy), served under its folder's name. The tests of the stack run in file order and share its state:
model B has no worker until `test_a_job_for_a_model_with_no_worker_waits_queued_then_runs` starts one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid

import httpx
import openai
import pytest
import redis
from pydantic import ValidationError

from tests.conftest import API_KEY, ROOT, start_api
from vireo.inference.registry import ModelRegistry
from vireo.platform.processes import start, stop, vireo_command, wait_until
from vireo.platform.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/12"  # this file's own database
A = "smollm2-135m"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


# --- settings ------------------------------------------------------------------------------------


def test_one_model_keeps_its_queue_and_engine(tmp_path):
    settings = Settings(home=tmp_path)
    assert settings.served_models == [A] and settings.default_model == A
    assert settings.queue_for(A) == settings.queue == "vireo"
    assert settings.for_worker().engine == settings.engine


def test_each_model_has_its_queue_engine_and_apps(tmp_path):
    settings = Settings(
        home=tmp_path,
        models=f"{A}, /models/coder.gguf",
        app_models="code:/models/coder.gguf",
        model_engines={"/models/coder.gguf": {"quantization": "int8"}},
    )
    assert settings.served_models == [A, "/models/coder.gguf"]
    assert settings.apps_default_models() == {"code": "/models/coder.gguf"}
    coder = settings.for_model("/models/coder.gguf")
    assert coder.model == "/models/coder.gguf" and coder.engine.quantization == "int8"
    assert coder.queue == "vireo.models-coder.gguf" != settings.queue
    assert settings.engine.quantization == "none" and settings.for_model(A).queue == "vireo"


def test_the_first_listed_model_is_the_default_and_the_engines(tmp_path):
    settings = Settings(home=tmp_path, models="qwen2.5-coder-0.5b,smollm2-135m")
    assert settings.default_model == settings.model == "qwen2.5-coder-0.5b"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"app_models": "code:nope"}, "VIREO_APP_MODELS names models"),
        ({"worker_model": "nope"}, "this worker's model 'nope' is not among VIREO_MODELS"),
        ({"model_engines": {"nope": {"quantization": "int8"}}}, "VIREO_MODEL_ENGINES sets models"),
        ({"model_engines": {A: {"quantization": "int3"}}}, "quantization"),
    ],
)
def test_a_pool_that_does_not_add_up_is_refused_at_start(tmp_path, fields, message):
    with pytest.raises(ValidationError, match=message):
        Settings(home=tmp_path, **fields)


def test_empty_pool_variables_mean_unset_and_engines_are_json(tmp_path, monkeypatch):
    """Compose passes an empty .env value through as an empty variable."""
    monkeypatch.setenv("VIREO_WORKER_MODEL", "")
    monkeypatch.setenv("VIREO_MODEL_ENGINES", "")
    assert (Settings(home=tmp_path).worker_model, Settings(home=tmp_path).model_engines) == (None, {})
    monkeypatch.setenv("VIREO_MODEL_ENGINES", '{"smollm2-135m": {"quantization": "int8"}}')
    assert Settings(home=tmp_path).engine.quantization == "int8"
    monkeypatch.setenv("VIREO_MODEL_ENGINES", "int8")
    with pytest.raises(ValidationError, match="VIREO_MODEL_ENGINES is not JSON"):
        Settings(home=tmp_path)


# --- the stack -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """An API serving A and B (no worker yet), one worker of A; yields what the tests need."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    folder = tmp_path_factory.mktemp("models") / "smollm2-twin"
    shutil.copytree(ModelRegistry().resolve(A).path, folder, copy_function=os.link)
    b = str(folder)
    env = {
        **{k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"},
        "REDIS_URL": REDIS_URL,
        "VIREO_API_KEY": API_KEY,
        "VIREO_QUEUE": f"pool-{uuid.uuid4().hex[:8]}",
        "VIREO_MODELS": f"{A},{b}",
        "VIREO_APP_MODELS": f"code:{b},summarize:{A}",
        "VIREO_WORKER_CONCURRENCY": "4",
        "VIREO_RATE_LIMIT_RPM": "0",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    logs = tmp_path_factory.mktemp("pool")
    api, url = start_api(env, logs / "api.log")
    state = {"url": url, "env": env, "b": b, "b_name": folder.name, "redis": client, "logs": logs, "workers": []}
    state["workers"].append(start_worker(state, A, "a0"))
    yield state
    stop([api, *state["workers"]])


def start_worker(state: dict, model: str, name: str):
    """A real worker of `model` (`vireo serve worker --model`), returned once its heartbeat names the model."""
    before = set(state["redis"].smembers("vireo:workers"))
    log = state["logs"] / f"worker-{name}.log"
    proc = start(vireo_command("serve", "worker", "--model", model), state["env"], log, ROOT)
    wait_until(
        lambda: any(
            beat_of(state, w).get("model") == model for w in set(state["redis"].smembers("vireo:workers")) - before
        ),
        240,
        f"worker {name}",
        proc,
        log,
    )
    state["workers"].append(proc)
    return proc


def beat_of(state: dict, worker_id: str) -> dict:
    raw = state["redis"].get(f"vireo:worker:{worker_id}")
    return json.loads(raw) if raw else {}


def client(state: dict) -> httpx.Client:
    return httpx.Client(base_url=state["url"], headers=HEADERS, timeout=120)


def finished(api: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def worker_model(state: dict, job_id: str) -> str:
    """The model of the worker that ran the job (its heartbeat, while it lives)."""
    worker = state["redis"].hget(f"vireo:job:{job_id}", "worker")
    return beat_of(state, worker).get("model", f"<worker {worker} gone>")


CODE = {"task": "explain", "code": "def add(a, b):\n    return a + b\n", "max_tokens": 24}
TEXT = {"text": "The sea was calm. The boat left the harbour at dawn and came back with fish.", "length": "short"}


@pytest.mark.stack
def test_a_model_nobody_serves_is_refused_at_submit(pool):
    with client(pool) as api:
        reply = api.post("/v1/jobs", json={"app": "echo", "input": {"text": "hi"}, "model": "gpt-17"})
        assert reply.status_code == 404, reply.text
        assert "'gpt-17' is not served here" in reply.json()["detail"] and pool["b_name"] in reply.json()["detail"]
    openai_client = openai.OpenAI(base_url=f"{pool['url']}/v1", api_key=API_KEY)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        openai_client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.stack
def test_a_job_for_a_model_with_no_worker_waits_queued_then_runs(pool):
    with client(pool) as api:
        job_id = api.post("/v1/jobs", json={"app": "code", "input": CODE}).json()["id"]  # code → B
        time.sleep(3)
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        models = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
        assert models[pool["b_name"]]["status"] == "waiting for a worker" and models[pool["b_name"]]["queued"] >= 1
        assert models[A]["status"] == "serving" and models[A]["workers"] == 1
        ready = api.get("/readyz")
        assert ready.status_code == 503 and pool["b_name"] in ready.json()["detail"]

        start_worker(pool, pool["b"], "b0")
        job = finished(api, job_id)
        assert job["status"] == "succeeded" and job["model"] == pool["b_name"], job
        assert worker_model(pool, job_id) == pool["b"]
        assert api.get("/readyz").status_code == 200


@pytest.mark.stack
def test_apps_run_on_their_models_and_a_job_may_name_one(pool):
    with client(pool) as api:
        summary = api.post("/v1/jobs", json={"app": "summarize", "input": TEXT}).json()["id"]
        code = api.post("/v1/jobs", json={"app": "code", "input": CODE}).json()["id"]
        named = api.post("/v1/jobs", json={"app": "summarize", "input": TEXT, "model": pool["b_name"]}).json()["id"]
        chat = api.post("/v1/jobs", json={"app": "chat", "input": {"prompt": "Hi", "max_tokens": 4}}).json()["id"]
        runs = {job_id: finished(api, job_id) for job_id in (summary, code, named, chat)}
    assert all(job["status"] == "succeeded" for job in runs.values()), runs
    assert (runs[summary]["model"], worker_model(pool, summary)) == (A, A)
    assert (runs[code]["model"], worker_model(pool, code)) == (pool["b_name"], pool["b"])
    assert (runs[named]["model"], worker_model(pool, named)) == (pool["b_name"], pool["b"])
    assert runs[chat]["model"] == A  # no app default: the first served model


@pytest.mark.stack
def test_openai_requests_pick_the_model_they_name(pool):
    openai_client = openai.OpenAI(base_url=f"{pool['url']}/v1", api_key=API_KEY)
    listed = [m.id for m in openai_client.models.list().data]
    assert listed == [A, pool["b_name"], "all-minilm-l6-v2"]  # the served models, then the embedding model
    reply = openai_client.chat.completions.create(
        model=pool["b_name"], messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0
    )
    assert reply.model == pool["b_name"]
    job_id = reply.id.removeprefix("chatcmpl-")
    assert (
        pool["redis"].hget(f"vireo:job:{job_id}", "model") == pool["b_name"] and worker_model(pool, job_id) == pool["b"]
    )


@pytest.mark.stack
def test_two_workers_of_a_model_share_its_queue(pool):
    start_worker(pool, A, "a1")
    with client(pool) as api:
        ids = [
            api.post(
                "/v1/jobs",
                json={"app": "chat", "input": {"prompt": f"Count to {n}.", "max_tokens": 48, "temperature": 0}},
            ).json()["id"]
            for n in range(12)
        ]
        runs = [finished(api, job_id) for job_id in ids]
    assert all(job["status"] == "succeeded" and job["model"] == A for job in runs)
    workers = {pool["redis"].hget(f"vireo:job:{job_id}", "worker") for job_id in ids}
    assert len(workers) == 2, f"one worker ran every job: {workers}"
    models = {m["id"]: m for m in client(pool).get("/v1/models").json()["data"]}
    assert models[A]["workers"] == 2 and models[A]["capacity"] == 8


@pytest.mark.stack
def test_the_ui_offers_the_served_models_and_an_apps_default(pool, monkeypatch):
    """The sidebar's model picker, in Streamlit's own test runner against this stack's API."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VIREO_API_URL", pool["url"])
    monkeypatch.setenv("VIREO_API_KEY", API_KEY)
    page = AppTest.from_file(str(ROOT / "vireo" / "ui" / "app.py"), default_timeout=60).run()
    picker = page.sidebar.selectbox(key="model")
    assert picker.options[0] == "Each app's default"
    assert [option.split(" (")[0] for option in picker.options[1:]] == [A, pool["b_name"]]
    assert page.session_state["model"] == "Each app's default"
    picker.select(pool["b_name"]).run()
    assert page.session_state["model"] == pool["b_name"] and not page.exception
