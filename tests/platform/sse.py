"""A small Server-Sent Events reader over httpx for the tests."""

from __future__ import annotations

import json

import httpx


def read_events(
    client: httpx.Client, path: str, last_event_id: str | None = None, until: str = "end", on_event=None
) -> list[dict]:
    """Collect events ({id, event, data}) from `path` until an `until` event (inclusive)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events, current = [], {}
    with client.stream("GET", path, headers=headers, timeout=180) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if "event" in current:
                    current["data"] = json.loads(current.get("data", "null"))
                    events.append(current)
                    if on_event:
                        on_event(current)
                    if current["event"] == until:
                        return events
                current = {}
                continue
            field, _, value = line.partition(":")
            current[field] = value[1:] if value.startswith(" ") else value
    return events
