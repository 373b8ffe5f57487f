"""Bad input and bad keys get clear 4xx answers; tenants cannot see each other's jobs."""

from __future__ import annotations

import httpx

from tests.platform.test_jobs import submit, wait_done


def test_missing_key_is_401_with_hint(api_server):
    reply = httpx.get(f"{api_server}/v1/jobs")
    assert reply.status_code == 401 and "Authorization: Bearer" in reply.json()["detail"]


def test_invalid_key_is_401(api_server):
    reply = httpx.get(f"{api_server}/v1/apps", headers={"Authorization": "Bearer nope"})
    assert reply.status_code == 401 and reply.json()["detail"] == "invalid API key"


def test_unknown_app_is_404_listing_apps(api):
    reply = api.post("/v1/jobs", json={"app": "teleport", "input": {}})
    assert reply.status_code == 404
    assert "unknown app 'teleport'" in reply.json()["detail"] and "summarize" in reply.json()["detail"]


def test_schema_violation_is_422_naming_the_field(api):
    reply = api.post("/v1/jobs", json={"app": "summarize", "input": {"text": "hi", "length": "epic"}})
    assert reply.status_code == 422
    detail = reply.json()["detail"]
    assert detail[0]["loc"] == ["body", "input", "length"] and "short" in detail[0]["msg"]


def test_missing_field_is_422(api):
    reply = api.post("/v1/jobs", json={"app": "summarize", "input": {}})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"][-1] == "text"


def test_bad_option_is_422(api):
    reply = api.post("/v1/jobs", json={"app": "summarize", "input": {"text": "x"}, "options": {"temperature": 9}})
    assert reply.status_code == 422


def test_prompt_longer_than_the_model_context_is_422_before_queueing(api):
    reply = api.post("/v1/jobs", json={"app": "chat", "input": {"prompt": "word " * 9000, "max_tokens": 8}})
    assert reply.status_code == 422 and "tokens" in reply.json()["detail"]


def test_oversized_body_is_413(api):
    reply = api.post(
        "/v1/jobs", content=b"{" + b" " * (9 * 1024 * 1024) + b"}", headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 413 and "limit" in reply.json()["detail"]


def test_other_tenant_gets_404(api, other_tenant):
    job_id = submit(api, app="chat", input={"prompt": "Hello", "max_tokens": 2})
    for reply in (
        other_tenant.get(f"/v1/jobs/{job_id}"),
        other_tenant.delete(f"/v1/jobs/{job_id}"),
        other_tenant.get(f"/v1/jobs/{job_id}/events"),
    ):
        assert reply.status_code == 404 and "not found" in reply.json()["detail"]
    assert job_id not in [j["id"] for j in other_tenant.get("/v1/jobs").json()["jobs"]]
    assert wait_done(api, job_id)["status"] == "succeeded"


def test_unknown_job_is_404(api):
    assert api.get("/v1/jobs/does-not-exist").status_code == 404
