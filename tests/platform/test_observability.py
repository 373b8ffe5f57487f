"""What an operator sees (issue #14, item 4): a JSON log line per request and per job end (failures with
their error), readiness that needs a live worker, and `/metrics` with the job histograms, outcome
counters, queue depth and live workers, behind an admin key or the scrape-only metrics token.

One private stack with JSON logs. The tests that need no worker run first, then one worker is started.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from vireo.platform.processes import wait_until
from vireo.tools.drills.stack import ADMIN_KEY, ROOT, USER_KEY, Stack

METRICS_TOKEN = "scrape-only-token"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


@pytest.fixture(scope="module")
def stack():
    with Stack(env={"VIREO_LOG_FORMAT": "json", "VIREO_METRICS_TOKEN": METRICS_TOKEN}, workers=0) as stack:
        yield stack


@pytest.fixture(scope="module")
def with_worker(stack):
    if not stack.workers:
        stack.start_worker()
        stack.wait_workers_ready()
    return stack


def log_lines(stack: Stack, name: str) -> list[dict]:
    """The JSON lines of a process's log (the worker's banner-free stderr and stdout)."""
    lines = []
    for line in (stack.dir / f"{name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def wait_for_line(stack: Stack, name: str, match, timeout: float = 30) -> dict:
    found: list[dict] = []
    wait_until(
        lambda: found.extend(rec for rec in log_lines(stack, name) if match(rec)) or found,
        timeout,
        f"a matching line in {name}.log",
    )
    return found[0]


def finished(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    wait_until(
        lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] in ("succeeded", "failed", "cancelled"),
        timeout,
        f"job {job_id} to end",
    )
    return client.get(f"/v1/jobs/{job_id}").json()


def scrape(stack: Stack, token: str = METRICS_TOKEN) -> dict[str, list]:
    """`/metrics` as {sample name: [(labels, value), ...]}."""
    reply = httpx.get(f"{stack.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert reply.status_code == 200, reply.text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def declared_series(stack: Stack) -> set[str]:
    """Every series name `/metrics` declares, with or without samples yet (a labelled counter has none
    before its first increment): a histogram's _bucket/_count/_sum, a counter's _total."""
    reply = httpx.get(f"{stack.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(reply.text)
        for suffix in suffixes.get(family.type, ("",))
    }


def value(samples: dict, name: str, **labels) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items()))


# --- without a worker -------------------------------------------------------------------------------
def test_readyz_is_503_while_no_worker_serves_the_model(stack):
    assert httpx.get(f"{stack.url}/healthz").status_code == 200  # alive, Redis answers
    reply = httpx.get(f"{stack.url}/readyz")
    assert reply.status_code == 503 and reply.headers["Retry-After"]
    assert reply.json()["status"] == "not ready"
    assert "no live worker serves model smollm2-135m" in reply.json()["detail"]


def test_a_job_cancelled_while_queued_is_logged_and_counted_by_the_api(stack):
    with stack.client() as client:
        job_id = client.post("/v1/jobs", json={"app": "echo", "input": {"text": "never runs"}}).json()["id"]
        assert client.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    line = wait_for_line(stack, "api", lambda rec: rec.get("logger") == "vireo.jobs" and rec.get("job_id") == job_id)
    assert line["status"] == "cancelled" and line["app"] == "echo" and line["tenant"] == "tenant-a"
    assert line["queue_wait_s"] is None  # it never started
    assert value(scrape(stack), "vireo_jobs_finished_total", app="echo", status="cancelled") >= 1


def test_queue_depth_counts_the_jobs_waiting_for_a_worker(stack):
    queue = {"queue": stack.env["VIREO_QUEUE"], "model": "smollm2-135m"}
    before = scrape(stack)
    with stack.client() as client:
        waiting = [
            client.post("/v1/jobs", json={"app": "echo", "input": {"text": f"wait {i}"}}).json()["id"] for i in range(2)
        ]
        during = scrape(stack)
        for job_id in waiting:
            client.delete(f"/v1/jobs/{job_id}")
    after = scrape(stack)
    assert value(during, "vireo_queue_messages", **queue) == value(before, "vireo_queue_messages", **queue) + 2
    assert value(during, "vireo_jobs_queued") == value(before, "vireo_jobs_queued") + 2
    assert value(after, "vireo_jobs_queued") == value(before, "vireo_jobs_queued")
    assert value(during, "vireo_workers_live", **queue) == 0


def test_each_request_logs_one_json_line_with_its_request_id(stack):
    with stack.client() as client:
        reply = client.get("/v1/jobs/no-such-job", headers={"X-Request-ID": "trace-42"})
        generated = client.get("/v1/jobs", headers={"X-Request-ID": "not a plain token"})
    assert reply.status_code == 404 and reply.headers["x-request-id"] == "trace-42"
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    line = wait_for_line(stack, "api", lambda rec: rec.get("request_id") == "trace-42")
    assert line["logger"] == "vireo.access" and line["level"] == "INFO" and line["time"]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/jobs/{job_id}", 404)
    assert line["tenant"] == "tenant-a" and line["key_id"] and line["duration_ms"] >= 0
    assert line["error"] == "job no-such-job not found"
    assert [rec.get("request_id") for rec in log_lines(stack, "api")].count("trace-42") == 1


def test_a_refused_key_and_a_413_are_logged_too(stack):
    httpx.post(f"{stack.url}/v1/jobs", headers={"Authorization": "Bearer wrong", "X-Request-ID": "bad-key"}, json={})
    httpx.post(
        f"{stack.url}/v1/jobs",
        headers={"Authorization": f"Bearer {USER_KEY}", "X-Request-ID": "too-big", "Content-Type": "application/json"},
        content=b" " * (9 * 2**20),
    )
    refused = wait_for_line(stack, "api", lambda rec: rec.get("request_id") == "bad-key")
    assert refused["status"] == 401 and refused["tenant"] is None and refused["error"] == "invalid API key"
    too_big = wait_for_line(stack, "api", lambda rec: rec.get("request_id") == "too-big")
    assert too_big["status"] == 413 and "VIREO_MAX_BODY_BYTES" in too_big["error"]


# --- with a worker ------------------------------------------------------------------------------------
def test_readyz_is_200_once_a_worker_serves_the_model(with_worker):
    wait_until(lambda: httpx.get(f"{with_worker.url}/readyz").status_code == 200, 30, "readiness")
    assert httpx.get(f"{with_worker.url}/readyz").json() == {"status": "ready", "workers": 1}


def test_a_job_end_logs_one_json_line_with_its_timings_and_tokens(with_worker):
    with with_worker.client() as client:
        chat = {"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 6, "temperature": 0}
        job_id = client.post("/v1/jobs", json={"app": "chat", "input": chat}).json()["id"]
        job = finished(client, job_id)
    assert job["status"] == "succeeded"
    line = wait_for_line(
        with_worker, "worker0", lambda rec: rec.get("logger") == "vireo.jobs" and rec.get("job_id") == job_id
    )
    assert line["level"] == "INFO" and line["status"] == "succeeded" and line["attempt"] == 1
    assert (line["app"], line["tenant"], line["model"]) == ("chat", "tenant-a", "smollm2-135m")
    assert line["completion_tokens"] == job["usage"]["completion_tokens"] > 1
    assert line["prompt_tokens"] == job["usage"]["prompt_tokens"] > 0
    for timing in ("queue_wait_s", "duration_s", "ttft_s", "time_per_output_token_s"):
        assert line[timing] is not None and line[timing] >= 0, timing
    assert line["ttft_s"] <= line["duration_s"] and line["error"] is None


def test_a_failed_job_logs_its_error(with_worker):
    with with_worker.client() as client:
        job_id = client.post("/v1/jobs", json={"app": "judge", "input": {"job_ids": ["no-such-job"]}}).json()["id"]
        assert finished(client, job_id)["status"] == "failed"
    line = wait_for_line(
        with_worker, "worker0", lambda rec: rec.get("logger") == "vireo.jobs" and rec.get("job_id") == job_id
    )
    assert line["level"] == "WARNING" and line["status"] == "failed" and line["app"] == "judge"
    assert "no-such-job not found" in line["error"]


def test_celery_logs_through_the_same_json_lines(with_worker):
    ready = wait_for_line(with_worker, "worker0", lambda rec: rec.get("logger") == "celery.apps.worker")
    assert ready["level"] == "INFO" and "ready" in ready["message"]
    log = (with_worker.dir / "worker0.log").read_text()
    assert "-------------- celery@" not in log, "the banner is not printed when lines are JSON"


def test_metrics_after_jobs_have_histograms_counters_queue_depth_and_workers(with_worker):
    with with_worker.client() as client:
        job_id = client.post("/v1/jobs", json={"app": "echo", "input": {"text": "counted"}}).json()["id"]
        assert finished(client, job_id)["status"] == "succeeded"
    wait_for_line(with_worker, "worker0", lambda rec: rec.get("job_id") == job_id)
    samples = scrape(with_worker)
    model = {"model": "smollm2-135m"}
    assert value(samples, "vireo_jobs_finished_total", app="echo", status="succeeded", **model) >= 1
    assert value(samples, "vireo_jobs_finished_total", app="judge", status="failed", **model) >= 1
    for histogram in ("vireo_job_queue_wait_seconds", "vireo_job_duration_seconds", "vireo_job_ttft_seconds"):
        assert value(samples, f"{histogram}_count", app="echo", **model) >= 1, histogram
        assert value(samples, f"{histogram}_bucket", app="echo", le="+Inf", **model) == value(
            samples, f"{histogram}_count", app="echo", **model
        )
    assert value(samples, "vireo_job_time_per_output_token_seconds_count", app="chat", **model) >= 1
    queue = with_worker.env["VIREO_QUEUE"]
    assert value(samples, "vireo_workers_live", queue=queue, **model) == 1
    assert ({"queue": queue, **model}, 0.0) in samples["vireo_queue_messages"]
    assert "vireo_jobs_queued" in samples and "vireo_jobs_running" in samples
    assert "vireo_jobs_submitted_total" in samples and "vireo_engine_running" in samples


def test_metrics_open_to_an_admin_key_or_the_metrics_token_only(with_worker):
    def status(token: str, path: str = "/metrics") -> int:
        return httpx.get(f"{with_worker.url}{path}", headers={"Authorization": f"Bearer {token}"}).status_code

    assert status(ADMIN_KEY) == 200 and status(METRICS_TOKEN) == 200
    assert status(USER_KEY) == 403 and status("not-a-key") == 401
    assert status(METRICS_TOKEN, "/v1/jobs") == 401  # the token opens /metrics and nothing else
    assert status(METRICS_TOKEN, "/v1/admin/keys") == 401


def test_every_metric_the_grafana_dashboard_queries_exists(with_worker):
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    queries += [variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable]
    assert len(queries) >= 10
    names = {name for query in queries for name in re.findall(r"\bvireo_[a-z0-9_]+", query)}
    missing = names - declared_series(with_worker)
    assert not missing, f"the dashboard queries series /metrics does not have: {sorted(missing)}"


def test_worker_health_is_ok_on_the_workers_host_and_fails_for_a_queue_nobody_serves(with_worker):
    def health(queue: str) -> subprocess.CompletedProcess:
        env = {**with_worker.env, "VIREO_QUEUE": queue}
        return subprocess.run(
            [sys.executable, "-m", "vireo.platform.cli", "worker-health"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = health(with_worker.env["VIREO_QUEUE"])
    assert ok.returncode == 0, ok.stderr
    refused = health("nobody-serves-this")
    assert refused.returncode == 1 and "no worker on host" in refused.stderr


# --- the other processes' logging ---------------------------------------------------------------------
def first_json_line(args: list[str], env: dict, match, timeout: float = 60) -> dict:
    """Start `vireo ARGS`, read its output until a JSON line `match`es, then stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vireo.platform.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline, seen = time.monotonic() + timeout, []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("{") and match(json.loads(line)):
                return json.loads(line)
            if time.monotonic() > deadline:
                break
    finally:
        proc.terminate()
        proc.wait(15)
    raise AssertionError("no matching line; output:\n" + "".join(seen[-30:]))


def test_the_worker_log_level_comes_from_settings(stack):
    env = {**stack.env, "VIREO_LOG_LEVEL": "debug", "VIREO_QUEUE": "log-level-probe"}
    line = first_json_line(
        ["serve", "worker"], env, lambda rec: rec["level"] == "DEBUG" and rec["logger"].startswith("celery")
    )
    assert line["message"]


def test_the_sandbox_service_logs_json_lines(tmp_path):
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "VIREO_LOG_FORMAT": "json", "HOME": str(tmp_path)}
    line = first_json_line(
        ["serve", "sandbox", "--socket", str(tmp_path / "sandbox.sock")],
        env,
        lambda rec: "sandbox service on" in rec["message"],
    )
    assert line["logger"] == "vireo.apps.sandbox.service" and line["time"]
