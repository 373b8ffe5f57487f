"""The Jobs page's logic: a row per job, the filters, and a job's event timeline (no Streamlit here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from vireo.ui.client import ServerEvent
from vireo.ui.job_state import timing_summary


def queued_at(job: dict) -> dt.datetime | None:
    stamp = (job.get("timings") or {}).get("queued_at")
    return dt.datetime.fromtimestamp(stamp) if stamp else None


def job_row(job: dict) -> dict:
    """What the history table shows of one job."""
    usage, times = job.get("usage") or {}, timing_summary(job)
    when = queued_at(job)
    return {
        "id": job["id"],
        "app": job["app"],
        "model": job.get("model") or "",
        "status": job["status"],
        "queued": when.strftime("%m-%d %H:%M:%S") if when else "",
        "seconds": round(times["total_s"], 2) if "total_s" in times else None,
        "tokens in": usage.get("prompt_tokens", 0),
        "tokens out": usage.get("completion_tokens", 0),
        "error": job.get("error") or "",
    }


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to show; an empty choice lets every value through."""

    apps: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    since: dt.date | None = None
    until: dt.date | None = None

    def keeps(self, job: dict) -> bool:
        if self.apps and job["app"] not in self.apps:
            return False
        if self.statuses and job["status"] not in self.statuses:
            return False
        if self.models and (job.get("model") or "") not in self.models:
            return False
        when = queued_at(job)
        if when is not None and self.since is not None and when.date() < self.since:
            return False
        return not (when is not None and self.until is not None and when.date() > self.until)


def values(jobs: list[dict], field: str) -> list[str]:
    """The distinct values of a job field, sorted (for a filter's choices)."""
    return sorted({str(job.get(field) or "") for job in jobs} - {""})


def event_time(event_id: str) -> float | None:
    """When a job event was written: its Redis stream id is `<milliseconds>-<sequence>`."""
    head = (event_id or "").split("-", 1)[0]
    return int(head) / 1000 if head.isdigit() else None


def _what(event: ServerEvent) -> str:
    data = event.data
    if event.kind == "status":
        return str(data.get("status", ""))
    if event.kind == "progress":
        fraction = data.get("fraction")
        share = f"{float(fraction):.0%}" if isinstance(fraction, (int, float)) else ""
        return " · ".join(x for x in (share, str(data.get("message") or "")) if x)
    if event.kind == "attempt":
        return f"attempt {data.get('attempt')}: {data.get('reason') or 'restarted'}"
    if event.kind == "error":
        return str(data.get("error") or "")
    if event.kind == "end":
        return str(data.get("status") or "")
    if event.kind == "result":
        return "result stored"
    return ""


def timeline(events: list[ServerEvent]) -> tuple[list[dict], list[dict]]:
    """(rows, curve): the events with their time after the first, runs of tokens folded into one row each
    (how many events and characters), and the characters streamed by each moment, for a chart."""
    times = [event_time(e.id) for e in events]
    start = next((t for t in times if t is not None), None)
    rows: list[dict] = []
    curve: list[dict] = []
    streamed = 0
    for event, when in zip(events, times):
        at = round(when - start, 3) if when is not None and start is not None else None
        if event.kind == "token":
            text = str(event.data.get("text", ""))
            streamed += len(text)
            curve.append({"seconds": at, "characters": streamed})
            if rows and rows[-1]["event"] == "tokens":
                run = rows[-1]
                run["events"] += 1
                run["characters"] += len(text)
                run["what"] = f"{run['events']} token events, {run['characters']} characters"
                continue
            rows.append(
                {"at (s)": at, "event": "tokens", "events": 1, "characters": len(text), "what": "1 token event"}
            )
            continue
        rows.append({"at (s)": at, "event": event.kind, "events": 1, "characters": 0, "what": _what(event)})
    return [{k: v for k, v in row.items() if k not in ("events", "characters")} for row in rows], curve
