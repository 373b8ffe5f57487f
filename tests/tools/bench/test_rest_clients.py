"""The platform benchmark's REST clients (rest_clients.py), against the real API and worker: either HTTP library
submits each job, reads its SSE stream to the end and sees its first token between submit and end."""

import asyncio

import pytest

from vireo.tools.bench.platform_ratio import _job_body, _platform_clients
from vireo.tools.bench.rest_clients import HTTP_CLIENTS, jobs_client


@pytest.mark.parametrize("http", HTTP_CLIENTS)
def test_each_http_client_follows_every_job_to_its_end(api, api_server, http):
    key = api.headers["Authorization"].removeprefix("Bearer ")
    prompts = ["Say hello.", "Name a colour.", "Count to three."]
    timelines, ended = asyncio.run(_platform_clients(api_server, prompts, 4, 2, http, key=key))
    assert len(timelines) == len(prompts)
    assert len({t["id"] for t in timelines}) == len(prompts)
    for t in timelines:
        assert t["tokens"] == 4  # ignore_eos: every job made its new tokens, and the record says so
        assert t["sent"] <= t["posted"] <= t["first"] <= t["end"] <= ended
        assert t["queued_at"] <= t["started_at"] <= t["first_token_at"] <= t["finished_at"]


@pytest.mark.parametrize("http", HTTP_CLIENTS)
def test_each_http_client_reads_every_event_of_a_job_in_order(api, api_server, http):
    key = api.headers["Authorization"].removeprefix("Bearer ")

    async def kinds() -> list[str]:
        jobs = jobs_client(http, api_server, key, 4)
        try:
            job_id = await jobs.submit(_job_body("Say hello.", 4))
            return [kind async for kind in jobs.event_kinds(job_id)]
        finally:
            await jobs.close()

    seen = asyncio.run(kinds())
    assert seen[0] == "status" and seen[-2:] == ["result", "end"]
    assert "token" in seen and seen.index("token") < seen.index("result")
