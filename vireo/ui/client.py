"""A small synchronous client of the Vireo REST API; the UI's only way to the platform."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generator

import httpx
from httpx_sse import EventSource


class ApiError(Exception):
    """The API answered with an error; `detail` is its message for a person."""

    def __init__(self, status: int | None, detail: str):
        self.status, self.detail = status, detail
        super().__init__(detail if status is None else f"{detail} (HTTP {status})")


class ApiUnavailable(ApiError):
    """The API could not be reached at all."""


class EndpointMissing(ApiError):
    """This server has no such route (a feature not installed or not built yet)."""


@dataclass(frozen=True)
class ServerEvent:
    """One job event from the SSE stream: its stream id, type and decoded JSON data."""

    id: str
    kind: str
    data: dict


def describe_detail(detail: Any) -> str:
    """FastAPI's `detail` (a string, or a list of field errors for 422) as one readable line."""
    if isinstance(detail, list):
        parts = []
        for error in detail:
            where = ".".join(str(p) for p in error.get("loc", []) if p not in ("body",))
            parts.append(f"{where}: {error.get('msg', error)}" if where else str(error.get("msg", error)))
        return "; ".join(parts)
    return str(detail)


class VireoClient:
    """Calls the job, app, engine and collection endpoints with a bearer key."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"}
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "VireoClient":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnavailable(None, f"cannot reach the Vireo API at {self.base_url}: {exc}") from exc
        _raise_for(response)
        return response.json()

    # -- system -------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._request("GET", "/healthz")

    def apps(self) -> list[dict]:
        return self._request("GET", "/v1/apps")["apps"]

    def engine_stats(self, model: str | None = None) -> dict:
        """The engine numbers of a served model's workers (None: the default model's)."""
        return self._request("GET", "/v1/engine/stats", params={"model": model} if model else None)

    def limits(self) -> dict:
        """This key's limits, and the largest request body the API takes (`request_body_bytes`)."""
        return self._request("GET", "/v1/limits")

    # -- jobs ---------------------------------------------------------------------------------
    def models(self) -> list[dict]:
        """The served models that run jobs, the default first, each with its workers and waiting jobs
        (GET /v1/models, less the models that only embed)."""
        listed = self._request("GET", "/v1/models")["data"]
        return [m for m in listed if "completions" in m.get("capabilities", ["completions"])]

    def submit(
        self,
        app: str,
        input: dict,
        options: dict | None = None,
        timeout_s: float | None = None,
        model: str | None = None,
    ) -> str:
        """Submit a job; `model` names a served model (None: the app's default)."""
        body = {"app": app, "input": input, "options": options or {}, **({"model": model} if model else {})}
        extra = {"timeout": timeout_s} if timeout_s else {}
        return self._request("POST", "/v1/jobs", json=body, **extra)["id"]

    def job(self, job_id: str) -> dict:
        """The job's view, with the `input` and `options` it was submitted with."""
        return self._request("GET", f"/v1/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict:
        return self._request("DELETE", f"/v1/jobs/{job_id}")

    def jobs(self, limit: int = 20, cursor: str | None = None) -> dict:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._request("GET", "/v1/jobs", params=params)

    def events(
        self, job_id: str, after: str | None = None, idle_s: float = 1.0
    ) -> Generator[ServerEvent | None, None, None]:
        """Follow a job's events until `end`, resuming after `after`.

        Yields None whenever the stream is silent for `idle_s`, so a page can refresh (Streamlit only
        notices clicks between element updates); it then reconnects with `Last-Event-ID`."""
        while True:
            headers = {"Last-Event-ID": after} if after else {}
            try:
                with self._http.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(10.0, read=idle_s)
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        _raise_for(response)
                    for sse in EventSource(response).iter_sse():
                        after = sse.id or after
                        yield ServerEvent(sse.id, sse.event, json.loads(sse.data) if sse.data else {})
                        if sse.event == "end":
                            return
            except httpx.ReadTimeout:
                yield None
            except httpx.TransportError as exc:
                raise ApiUnavailable(None, f"lost the event stream of job {job_id}: {exc}") from exc

    # -- RAG collections ----------------------------------------------------------------------
    def collections(self) -> list[dict]:
        reply = self._request("GET", "/v1/collections")
        return reply.get("collections", reply) if isinstance(reply, dict) else reply

    def create_collection(self, name: str) -> dict:
        return self._request("POST", "/v1/collections", json={"name": name})

    def delete_collection(self, name: str) -> dict:
        return self._request("DELETE", f"/v1/collections/{name}")


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = describe_detail(response.json().get("detail", response.text))
    except (ValueError, AttributeError):
        detail = response.text or response.reason_phrase
    # FastAPI answers an unknown route with exactly "Not Found" / "Method Not Allowed"
    if response.status_code in (404, 405) and detail in ("Not Found", "Method Not Allowed"):
        raise EndpointMissing(
            response.status_code, f"this server has no {response.request.method} {response.request.url.path}"
        )
    raise ApiError(response.status_code, detail)
