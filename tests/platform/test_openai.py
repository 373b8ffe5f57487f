"""The OpenAI-compatible face, exercised with the real `openai` client."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import API_KEY


@pytest.fixture(scope="module")
def client(api_server, celery_worker):
    return openai.OpenAI(base_url=f"{api_server}/v1", api_key=API_KEY, max_retries=0, timeout=120)


def test_models_lists_the_served_model(client):
    listed = client.models.list().data
    assert [m.id for m in listed] == ["smollm2-135m", "all-minilm-l6-v2"]  # the generator, then the embedder
    assert [m.capabilities for m in listed] == [["chat.completions", "completions"], ["embeddings"]]


def test_chat_completion_round_trip(client):
    reply = client.chat.completions.create(
        model="smollm2-135m",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=12,
        temperature=0,
    )
    assert "Paris" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 5 and 0 < reply.usage.completion_tokens <= 12


def test_chat_completion_streams_the_same_text(client):
    messages = [{"role": "user", "content": "Name three colours."}]
    whole = client.chat.completions.create(model="smollm2-135m", messages=messages, max_tokens=16, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="smollm2-135m", messages=messages, max_tokens=16, temperature=0, stream=True
        )
    )
    assert len(chunks) > 2 and chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_completion_with_stop(client):
    reply = client.completions.create(
        model="smollm2-135m", prompt="1, 2, 3, 4,", max_tokens=20, temperature=0, stop=["7"]
    )
    assert "7" not in reply.choices[0].text and "5" in reply.choices[0].text


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])


def _job_of(api, completion_id: str) -> dict:
    return api.get(f"/v1/jobs/{completion_id.split('-', 1)[1]}").json()


def _wait_status(api, completion_id: str, wanted: str, timeout: float = 20) -> dict:
    import time

    deadline = time.time() + timeout
    while (job := _job_of(api, completion_id))["status"] != wanted and time.time() < deadline:
        time.sleep(0.2)
    return job


def test_a_stream_the_client_drops_cancels_its_job(api, api_server):
    """Closing a streamed completion stops the generation, and the tokens it used are still counted."""
    import json

    import httpx

    body = {
        "model": "smollm2-135m",
        "stream": True,
        "max_tokens": 2000,
        "temperature": 0.8,
        "seed": 1,
        "messages": [{"role": "user", "content": "Write a very long story about the sea."}],
    }
    with httpx.Client(base_url=api_server, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = (line for line in response.iter_lines() if line.startswith("data: "))
            first = json.loads(next(lines)[6:])
            for _ in range(3):
                next(lines)
    job = _wait_status(api, first["id"], "cancelled")
    assert job["status"] == "cancelled"
    assert job["usage"]["prompt_tokens"] > 5 and 3 <= job["usage"]["completion_tokens"] < 2000


def test_a_non_streamed_request_the_client_abandons_cancels_its_job(api, api_server):
    import httpx

    body = {
        "model": "smollm2-135m",
        "max_tokens": 2000,
        "temperature": 0.8,
        "seed": 2,
        "messages": [{"role": "user", "content": "Write a very long story about mountains."}],
    }
    with httpx.Client(base_url=api_server, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=3) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v1/chat/completions", json=body)
    newest = api.get("/v1/jobs", params={"limit": 1}).json()["jobs"][0]
    assert newest["app"] == "chat"
    job = _wait_status(api, f"chatcmpl-{newest['id']}", "cancelled")
    assert job["status"] == "cancelled" and job["usage"]["completion_tokens"] > 0


def test_response_format_json_schema_gives_valid_json(client):
    import json

    import jsonschema

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    reply = client.chat.completions.create(
        model="smollm2-135m",
        max_tokens=48,
        temperature=0,
        messages=[{"role": "user", "content": "Give the largest city of France and its population as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


def test_structured_outputs_choice_answers_from_the_list(client):
    reply = client.chat.completions.create(
        model="smollm2-135m",
        max_tokens=8,
        temperature=0.9,
        seed=3,
        messages=[{"role": "user", "content": "Is the sky green? Answer yes or no."}],
        extra_body={"structured_outputs": {"choice": ["yes", "no"]}},
    )
    assert reply.choices[0].message.content in ("yes", "no")


def test_an_invalid_regex_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError, match="regex"):
        client.chat.completions.create(
            model="smollm2-135m",
            max_tokens=8,
            messages=[{"role": "user", "content": "Say a number."}],
            extra_body={"structured_outputs": {"regex": "([0-9"}},
        )
