"""The platform benchmark's REST clients: submit a job, then read its SSE stream line by line to its end.

Two HTTP libraries behind one shape, so a run can say which one its clients spoke: the client is part of the
measuring apparatus, not of the platform, and a Python client costs the host CPU the platform then lacks.
Reading SSE events from a real stack on the 2-core dev VM (SmolLM2, 8 clients, 1,088 events), httpx took ~205 µs
of the client's CPU an event (its POST's share included) and aiohttp ~73 µs, the client vLLM's own serving
benchmark uses. Both parse every line; neither skips an event.
"""

from __future__ import annotations

from typing import AsyncGenerator, Literal

import aiohttp
import httpx

HttpClient = Literal["aiohttp", "httpx"]
HTTP_CLIENTS: tuple[HttpClient, ...] = ("aiohttp", "httpx")
TIMEOUT_S = 600
LINE_LIMIT = 1 << 20  # an SSE line (a job's result event) may be longer than aiohttp's 64 KiB default


class AiohttpJobs:
    def __init__(self, url: str, key: str, connections: int):
        self.session = aiohttp.ClientSession(
            url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            connector=aiohttp.TCPConnector(limit=connections),
            read_bufsize=LINE_LIMIT,
        )

    async def submit(self, body: dict) -> str:
        async with self.session.post("/v1/jobs", json=body) as reply:
            if reply.status != 202:
                raise RuntimeError(f"submit answered {reply.status}: {await reply.text()}")
            return (await reply.json())["id"]

    async def event_kinds(self, job_id: str) -> AsyncGenerator[str, None]:
        async with self.session.get(f"/v1/jobs/{job_id}/events") as stream:
            stream.raise_for_status()
            async for raw in stream.content:
                if raw.startswith(b"event:"):
                    yield raw[6:].strip().decode()

    async def close(self) -> None:
        await self.session.close()


class HttpxJobs:
    def __init__(self, url: str, key: str, connections: int):
        self.client = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=TIMEOUT_S,
            limits=httpx.Limits(max_connections=connections),
        )

    async def submit(self, body: dict) -> str:
        reply = await self.client.post("/v1/jobs", json=body)
        reply.raise_for_status()
        return reply.json()["id"]

    async def event_kinds(self, job_id: str) -> AsyncGenerator[str, None]:
        async with self.client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            stream.raise_for_status()
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    yield line.split(":", 1)[1].strip()

    async def close(self) -> None:
        await self.client.aclose()


def jobs_client(http: HttpClient, url: str, key: str, connections: int) -> AiohttpJobs | HttpxJobs:
    """A client for `connections` concurrent submits and streams (make it inside the event loop that uses it)."""
    if http == "aiohttp":
        return AiohttpJobs(url, key, connections)
    return HttpxJobs(url, key, connections)
