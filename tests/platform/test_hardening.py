"""Input that used to break the API or slip through now gets a clear 4xx, and never stalls other requests."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import API_KEY
from vireo.platform.input_limits import TokenModel, unrepresentable_number

AUTH = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
CHAT = '{"model": "default", "messages": [{"role": "user", "content": "hi"}], %s}'


@pytest.fixture(scope="module")
def client(api_server):
    """The API without a worker: everything here is refused (or queued) at submit time."""
    with httpx.Client(base_url=api_server, headers=AUTH, timeout=120) as c:
        yield c


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_temperature_option_is_422(client, literal):
    reply = client.post(
        "/v1/jobs", content='{"app": "chat", "input": {"prompt": "hi"}, "options": {"temperature": %s}}' % literal
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", "options", "temperature"]
    assert "finite" in reply.json()["detail"][0]["msg"]


def test_non_finite_number_anywhere_in_app_input_is_422(client):
    reply = client.post("/v1/jobs", content='{"app": "chat", "input": {"prompt": "hi", "temperature": NaN}}')
    assert reply.status_code == 422, reply.text
    error = reply.json()["detail"][0]
    assert error["loc"] == ["body", "input", "temperature"] and "finite" in error["msg"]


def test_non_finite_temperature_on_the_openai_routes_is_422_in_openai_shape(client):
    for path, body in (
        ("/v1/chat/completions", CHAT % '"temperature": NaN'),
        ("/v1/completions", '{"model": "default", "prompt": "hi", "temperature": Infinity}'),
    ):
        reply = client.post(path, content=body)
        assert reply.status_code == 422, reply.text
        assert "temperature" in reply.json()["error"]["message"]


@pytest.mark.parametrize("where", ["options", "input"])
def test_seed_beyond_64_bits_is_422(client, where):
    job = {"app": "chat", "input": {"prompt": "hi"}}
    job[where] = {**job.get(where, {}), "seed": 2**70}
    reply = client.post("/v1/jobs", json=job)
    assert reply.status_code == 422, reply.text
    assert reply.json()["detail"][0]["loc"] == ["body", where, "seed"]


def test_seed_beyond_64_bits_on_the_openai_route_is_422(client):
    reply = client.post("/v1/chat/completions", content=CHAT % f'"seed": {2**70}')
    assert reply.status_code == 422 and "seed" in reply.json()["error"]["message"]


@pytest.mark.parametrize("cursor", ["nan", "inf", "-inf", "1e999", "yesterday"])
def test_cursor_that_is_not_a_finite_number_is_400(client, cursor):
    reply = client.get("/v1/jobs", params={"cursor": cursor})
    assert reply.status_code == 400 and "cursor" in reply.json()["detail"]


def test_last_event_id_that_is_not_a_stream_id_is_422(client):
    job_id = client.post("/v1/jobs", json={"app": "echo", "input": {"text": "hi"}}).json()["id"]
    reply = client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "not-an-id"})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


def test_chunked_body_over_the_limit_is_413_before_the_rest_is_read(api_server):
    """No Content-Length: the API counts bytes as they arrive, answers once past 8 MiB and hangs up."""
    host, port = urlsplit(api_server).hostname, urlsplit(api_server).port
    chunk, sent, reply = b" " * 65536, 0, []
    with socket.create_connection((host, port), timeout=30) as sock:
        reader = threading.Thread(target=lambda: reply.append(sock.recv(65536)))
        reader.start()
        sock.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + API_KEY.encode()
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while sent < 40 * 1024 * 1024:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server answered and hung up: it stopped reading
            pass
        reader.join(30)
    assert reply and reply[0].startswith(b"HTTP/1.1 413"), reply
    assert sent < 40 * 1024 * 1024


def test_prompt_longer_than_the_context_could_hold_is_422(client):
    reply = client.post("/v1/jobs", json={"app": "chat", "input": {"prompt": "word " * 1_500_000}})
    assert reply.status_code == 422 and "context" in reply.json()["detail"]


def test_health_keeps_answering_while_long_prompts_are_tokenized(client):
    """Tokenizing runs off the event loop: /healthz answers many times while four long prompts
    (each just under the character cap, so really tokenized) are checked one after another."""
    prompt = "word " * 120_000
    replies = []
    submitters = [
        threading.Thread(
            target=lambda: replies.append(client.post("/v1/jobs", json={"app": "chat", "input": {"prompt": prompt}}))
        )
        for _ in range(4)
    ]
    for thread in submitters:
        thread.start()
    answered = 0
    while any(thread.is_alive() for thread in submitters):
        answered += client.get("/healthz").status_code == 200
    assert [r.status_code for r in replies] == [422] * 4  # ~120k tokens: too long, but counted exactly
    assert answered >= 20


def test_texts_past_the_character_cap_are_counted_without_the_tokenizer():
    from transformers import AutoTokenizer

    from vireo.inference.prompt_text import load_encoder
    from vireo.inference.registry import ModelRegistry
    from vireo.platform.settings import Settings

    path = ModelRegistry(Settings().home).resolve("smollm2-135m").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = TokenModel(*load_encoder(path), context=64)
    assert model.longest_token_chars == max(len(token) for token in tokenizer.get_vocab())
    count = model.counter()
    assert count("hello world") == len(tokenizer("hello world", add_special_tokens=False)["input_ids"])
    past_the_cap = "x" * (64 * model.longest_token_chars + 1)
    assert count(past_the_cap) > 64  # a lower bound, already over the context


def test_unrepresentable_numbers_are_found_at_any_depth():
    assert unrepresentable_number({"a": [1, 2.5, {"b": True}], "c": -(2**63)}) is None
    assert unrepresentable_number({"a": [{"b": float("nan")}]})[0] == ("a", 0, "b")
    assert unrepresentable_number([2**63])[0] == (0,)
    deep: list = [float("inf")]
    for _ in range(5000):
        deep = [deep]
    assert unrepresentable_number(deep) is not None


def test_the_schema_documents_every_error_status_and_the_event_streams(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/jobs"]["post"]["responses"]) >= {"202", "400", "401", "404", "413", "422", "429", "503"}
    assert set(paths["/v1/jobs"]["get"]["responses"]) >= {"200", "400", "401", "422", "503"}
    assert "text/event-stream" in paths["/v1/jobs/{job_id}/events"]["get"]["responses"]["200"]["content"]
    chat = paths["/v1/chat/completions"]["post"]["responses"]
    assert {"application/json", "text/event-stream"} <= set(chat["200"]["content"])
    assert chat["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIErrorReply")
    for path, operations in paths.items():
        for method, operation in operations.items():
            for code, answer in operation["responses"].items():
                if code in ("429", "503"):
                    assert "Retry-After" in answer.get("headers", {}), (method, path, code)


def test_a_method_the_path_does_not_serve_is_405_listing_every_method_it_does(client):
    reply = client.request("PATCH", "/v1/jobs")
    assert reply.status_code == 405 and reply.headers["Allow"] == "GET, POST"
