"""One job travels REST → Celery/Redis → model → back."""

from __future__ import annotations

import time

from tests.platform.sse import read_events

TEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It was built from 1887 to "
    "1889 as the centrepiece of the World's Fair and was designed by the company of Gustave Eiffel. "
    "It is 330 metres tall and was the tallest man-made structure in the world for 41 years."
)


def submit(api, app="summarize", input=None, options=None) -> str:
    reply = api.post(
        "/v1/jobs",
        json={
            "app": app,
            "input": input or {"text": TEXT, "length": "short"},
            "options": options or {"max_tokens": 24},
        },
    )
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "queued"
    return reply.json()["id"]


def wait_done(api, job_id: str, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_health_needs_no_key(api_server):
    import httpx

    assert httpx.get(f"{api_server}/healthz").json() == {"status": "ok"}


def test_apps_lists_summarize_with_schemas(api):
    apps = {a["name"]: a for a in api.get("/v1/apps").json()["apps"]}
    assert "summarize" in apps and "chat" in apps
    assert "text" in apps["summarize"]["input_schema"]["properties"]
    assert "summary" in apps["summarize"]["output_schema"]["properties"]


def test_submit_stream_and_succeed(api):
    job_id = submit(api)
    events = read_events(api, f"/v1/jobs/{job_id}/events")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and kinds[-1] == "end"
    tokens = "".join(e["data"]["text"] for e in events if e["event"] == "token")
    result = next(e["data"]["result"] for e in events if e["event"] == "result")
    assert tokens.strip() and result["summary"] == tokens.strip()
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["result"]["summary"] == result["summary"]
    t = job["timings"]
    assert t["queued_at"] <= t["started_at"] <= t["first_token_at"] <= t["finished_at"]
    # the native engine's share of the time to first token, on the same clock
    engine = [t["engine_received_at"], t["engine_scheduled_at"], t["engine_first_token_at"]]
    assert t["started_at"] <= engine[0] <= engine[1] <= engine[2] <= t["first_token_at"]
    assert job["usage"]["prompt_tokens"] > 50 and 0 < job["usage"]["completion_tokens"] <= 24
    assert job["progress"]["fraction"] == 1.0


def test_list_is_newest_first_and_paginates(api):
    ids = [submit(api, app="chat", input={"prompt": f"Say {i}", "max_tokens": 2}) for i in range(3)]
    page = api.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    rest = api.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["jobs"][0]["id"] == ids[0]
    for job_id in ids:
        wait_done(api, job_id)


def stream_id(event: dict) -> tuple[int, int]:
    millis, seq = event["id"].split("-")
    return int(millis), int(seq)


def text_of(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "token")


def test_sse_resumes_after_last_event_id(api):
    job_id = submit(api)
    full = read_events(api, f"/v1/jobs/{job_id}/events")
    assert len(full) > 4
    resumed = read_events(api, f"/v1/jobs/{job_id}/events", last_event_id=full[2]["id"])
    # the same events after full[2]; tokens read in a row may come joined (the same text in fewer pieces)
    assert resumed[-1]["id"] == full[-1]["id"] and stream_id(resumed[0]) >= stream_id(full[3])
    assert [e["event"] for e in resumed if e["event"] != "token"] == [
        e["event"] for e in full[3:] if e["event"] != "token"
    ]
    assert text_of(resumed) == text_of(full[3:])


def test_engine_stats_published(api):
    stats = api.get("/v1/engine/stats").json()
    assert stats["model"] == "smollm2-135m" and "running" in stats
