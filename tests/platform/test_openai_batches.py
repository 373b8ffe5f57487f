"""OpenAI's Batch API through the real API, worker and SmolLM2-135M, with the real `openai` client:
a JSONL file of requests in, each line a job, a JSONL file of replies out."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import openai
import pytest
import redis

from tests.conftest import API_KEY, OTHER_KEY, _stop, start_api

pytestmark = pytest.mark.stack  # starts API processes of its own

MODEL = "smollm2-135m"
ENDED = ("completed", "failed", "cancelled", "expired")


@pytest.fixture(scope="module")
def client(api_server, celery_worker):
    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=API_KEY, max_retries=0, timeout=60)


def client_with_limits(api_server: str, **limits) -> openai.OpenAI:
    """A client with a fresh key for a fresh tenant (made through the admin API) with these limits."""
    reply = httpx.post(
        f"{api_server}/v1/admin/keys",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"tenant": f"batch-{uuid.uuid4().hex[:8]}", **limits},
    )
    assert reply.status_code == 201, reply.text
    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=reply.json()["key"], max_retries=0, timeout=60)


def chat_line(custom_id: str, text: str, max_tokens: int = 6, **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens,
            "temperature": 0,
            **body,
        },
    }


def upload(client: openai.OpenAI, lines: list) -> str:
    content = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    return client.files.create(file=("requests.jsonl", content.encode()), purpose="batch").id


def wait_until(client: openai.OpenAI, batch_id: str, done, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        batch = client.batches.retrieve(batch_id)
        if done(batch):
            return batch
        time.sleep(0.3)
    pytest.fail(f"batch {batch_id} is still {batch.status} ({batch.request_counts}) after {timeout:g} s")


def results(client: openai.OpenAI, file_id: str | None) -> dict[str, dict]:
    if file_id is None:
        return {}
    entries = [json.loads(line) for line in client.files.content(file_id).text.splitlines()]
    return {entry["custom_id"]: entry for entry in entries}


def test_a_batch_of_chat_requests_gives_each_custom_id_its_reply(client):
    questions = {
        "q-paris": "What is the capital of France?",
        "q-sky": "What colour is the sky?",
        "q-two": "What is 1 + 1?",
        "q-hello": "Say hello.",
    }
    file_id = upload(client, [chat_line(cid, text) for cid, text in questions.items()])
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"job": "nightly"}
    )
    assert batch.status == "validating" and batch.metadata == {"job": "nightly"}

    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)
    assert batch.status == "completed", batch
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (4, 4, 0)
    assert batch.created_at <= batch.in_progress_at <= batch.finalizing_at <= batch.completed_at
    assert batch.error_file_id is None
    output = results(client, batch.output_file_id)
    assert set(output) == set(questions)
    for entry in output.values():
        assert entry["error"] is None and entry["response"]["status_code"] == 200
        reply = entry["response"]["body"]
        assert reply["object"] == "chat.completion" and reply["model"] == MODEL
        assert 0 < reply["usage"]["completion_tokens"] <= 6
        assert isinstance(reply["choices"][0]["message"]["content"], str)
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert batch.id in [b.id for b in client.batches.list(limit=100).data]


def test_a_completions_batch_answers_the_prompts(client):
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/completions",
            "body": {"model": MODEL, "prompt": f"Count: {i},", "max_tokens": 4, "temperature": 0},
        }
        for i in range(2)
    ]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/completions", completion_window="24h"
    )
    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)
    assert batch.status == "completed", batch
    output = results(client, batch.output_file_id)
    assert set(output) == {"c0", "c1"}
    assert all(e["response"]["body"]["object"] == "text_completion" for e in output.values())


def test_a_malformed_file_fails_validation_naming_each_bad_line(client):
    lines = [
        chat_line("ok", "Hi"),
        "{not json",
        {**chat_line("wrong-url", "Hi"), "url": "/v1/embeddings"},
        chat_line("ok", "duplicate id"),
        {**chat_line("m", "Hi"), "body": {"model": "gpt-4o", "messages": []}},
    ]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = wait_until(client, batch.id, lambda b: b.status in ENDED, timeout=30)
    assert batch.status == "failed" and batch.failed_at is not None
    errors = {e.line: e for e in batch.errors.data}
    assert set(errors) == {2, 3, 4, 5}
    assert errors[2].code == "invalid_json_line"
    assert errors[3].code == "invalid_url" and errors[3].param == "url"
    assert errors[4].code == "duplicate_custom_id"
    assert errors[5].code == "model_not_found" and "gpt-4o" in errors[5].message
    assert batch.request_counts.total == 0 and batch.output_file_id is None


def test_a_bad_request_body_fails_only_its_own_line(client):
    lines = [chat_line("good", "Hi"), chat_line("penalised", "Hi", frequency_penalty=1.5)]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    assert set(results(client, batch.output_file_id)) == {"good"}
    refused = results(client, batch.error_file_id)["penalised"]
    assert refused["response"]["status_code"] == 400
    assert "frequency_penalty" in refused["response"]["body"]["error"]["message"]


def test_an_unknown_endpoint_or_purpose_is_a_400_in_openai_shape(client):
    file_id = upload(client, [chat_line("a", "Hi")])
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    assert "/v1/embeddings" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h")


def test_another_tenant_cannot_see_the_file_or_the_batch(client, api_server):
    file_id = upload(client, [chat_line("a", "Hi")])
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    other = openai.OpenAI(base_url=f"{api_server}/v1", api_key=OTHER_KEY, max_retries=0, timeout=60)
    for attempt in (
        lambda: other.files.retrieve(file_id),
        lambda: other.files.content(file_id),
        lambda: other.files.delete(file_id),
        lambda: other.batches.retrieve(batch.id),
        lambda: other.batches.cancel(batch.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert file_id not in [f.id for f in other.files.list().data]
    assert batch.id not in [b.id for b in other.batches.list().data]
    with pytest.raises(openai.NotFoundError):  # nor build a batch on it
        other.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    assert wait_until(client, batch.id, lambda b: b.status in ENDED).status == "completed"
    assert client.files.delete(file_id).deleted and file_id not in [f.id for f in client.files.list().data]


def test_a_cancelled_batch_keeps_the_replies_it_had_and_runs_no_more(api_server, celery_worker):
    client = client_with_limits(api_server, concurrent=1)  # one line at a time, so the batch is caught mid-way
    lines = [chat_line(f"r{i}", f"Tell me a story about the number {i}.", max_tokens=24) for i in range(8)]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_until(client, batch.id, lambda b: b.request_counts.completed >= 1)
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)
    assert batch.status == "cancelled" and batch.cancelled_at >= batch.cancelling_at
    done = results(client, batch.output_file_id)
    assert 1 <= len(done) == batch.request_counts.completed < 8
    assert all(entry["response"]["status_code"] == 200 for entry in done.values())
    time.sleep(2)  # nothing more is submitted after the batch ended
    assert client.batches.retrieve(batch.id).request_counts == batch.request_counts


def test_a_tenant_limited_to_2_concurrent_jobs_completes_a_6_line_batch(api_server, celery_worker):
    client = client_with_limits(api_server, concurrent=2)
    lines = [chat_line(f"n{i}", f"Name a fruit, number {i}.", max_tokens=8) for i in range(6)]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)
    assert batch.status == "completed", batch
    assert batch.request_counts.completed == 6 and set(results(client, batch.output_file_id)) == {
        f"n{i}" for i in range(6)
    }
    # the jobs of the batch, from the tenant's own job list: never more than 2 queued or running at once
    jobs = httpx.get(
        f"{api_server}/v1/jobs", params={"limit": 50}, timeout=30, headers={"Authorization": f"Bearer {client.api_key}"}
    ).json()["jobs"]
    spans = [(job["timings"]["queued_at"], job["timings"]["finished_at"]) for job in jobs]
    assert len(spans) == 6
    most = max(sum(start <= at < end for start, end in spans) for at, _ in spans)
    assert most == 2  # the batch used both slots, and no more


RESTART_REDIS_URL = "redis://127.0.0.1:6379/14"  # this test's own database: its APIs run no worker


def test_a_restarted_api_resumes_the_batch_where_it_was(platform_env, tmp_path_factory):
    """With no worker, a line's job stays queued until its tenant cancels it; a cancelled job is a
    collected (failed) line, and the next line is submitted: by the second API process, after the first
    was stopped mid-batch. Every line is submitted once and answered once."""
    redis.Redis.from_url(RESTART_REDIS_URL).flushdb()
    env = {**platform_env, "REDIS_URL": RESTART_REDIS_URL, "VIREO_QUEUE": f"batch-restart-{uuid.uuid4().hex[:8]}"}
    logs = tmp_path_factory.mktemp("batch-restart")
    first, url = start_api(env, logs / "first.log")
    try:
        client = client_with_limits(url, concurrent=1)
        lines = [chat_line(f"line-{i}", "Hi") for i in range(3)]
        batch = client.batches.create(
            input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
        )
        wait_until(client, batch.id, lambda b: b.status == "in_progress", timeout=30)
        first_job = wait_for_jobs(url, client.api_key, 1)[0]
    finally:
        _stop(first)
    second, url = start_api(env, logs / "second.log")
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=client.api_key, max_retries=0, timeout=60)
        for count in (1, 2, 3):  # cancel each line's job in turn: the next is submitted only then
            job_id = first_job if count == 1 else wait_for_jobs(url, client.api_key, count)[0]
            assert (
                httpx.delete(
                    f"{url}/v1/jobs/{job_id}", timeout=30, headers={"Authorization": f"Bearer {client.api_key}"}
                ).status_code
                == 200
            )
        batch = wait_until(client, batch.id, lambda b: b.status in ENDED, timeout=60)
        assert batch.status == "completed" and batch.request_counts.failed == 3
        errors = results(client, batch.error_file_id)
        assert set(errors) == {"line-0", "line-1", "line-2"}
        assert all(e["error"]["code"] == "batch_cancelled" for e in errors.values())
        assert len(wait_for_jobs(url, client.api_key, 3)) == 3  # no line ran twice
    finally:
        _stop(second)
        redis.Redis.from_url(RESTART_REDIS_URL).flushdb()


def wait_for_jobs(url: str, key: str, count: int, timeout: float = 30) -> list[str]:
    """The tenant's job ids, newest first, once it has `count` of them."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = httpx.get(
            f"{url}/v1/jobs", params={"limit": 50}, timeout=30, headers={"Authorization": f"Bearer {key}"}
        ).json()["jobs"]
        if len(jobs) >= count:
            return [job["id"] for job in jobs]
        time.sleep(0.3)
    pytest.fail(f"the tenant has {len(jobs)} jobs, not {count}, after {timeout:g} s")
