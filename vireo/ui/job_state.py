"""What the UI knows about one job, folded from its event stream (no Streamlit here)."""

from __future__ import annotations

from dataclasses import dataclass

from vireo.ui.client import ServerEvent

FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class JobState:
    """The streamed text so far, status, progress and, once ended, result or error."""

    job_id: str
    status: str = "queued"
    text: str = ""
    fraction: float = 0.0
    message: str = ""
    result: dict | None = None
    error: str | None = None
    last_event_id: str | None = None
    ended: bool = False
    attempt: int = 1
    restart_reason: str | None = None

    def apply(self, event: ServerEvent) -> None:
        """Fold one event into the state."""
        self.last_event_id = event.id or self.last_event_id
        data = event.data
        if event.kind == "token" and not data.get("index"):  # the first choice (jobs may sample n)
            self.text += data.get("text", "")
        elif event.kind == "progress":
            self.fraction = float(data.get("fraction", self.fraction))
            self.message = data.get("message", self.message)
        elif event.kind == "status":
            self.status = data.get("status", self.status)
        elif event.kind == "result":
            self.result = data.get("result")
        elif event.kind == "error":
            self.error = data.get("error")
        elif event.kind == "attempt":  # the job started over (its worker stopped): the old text is void
            self.text, self.fraction, self.message = "", 0.0, ""
            self.status, self.result, self.error = "queued", None, None
            self.attempt = int(data.get("attempt", self.attempt + 1))
            self.restart_reason = data.get("reason")
        elif event.kind == "end":
            self.status = data.get("status", self.status)
            self.ended = True


def timing_summary(view: dict) -> dict[str, float]:
    """Queue wait, time to first token, total and decode speed from a job view, where known."""
    t = view.get("timings") or {}
    usage = view.get("usage") or {}
    out: dict[str, float] = {}
    if t.get("queued_at") and t.get("started_at"):
        out["queue_s"] = t["started_at"] - t["queued_at"]
    if t.get("queued_at") and t.get("first_token_at"):
        out["first_token_s"] = t["first_token_at"] - t["queued_at"]
    if t.get("queued_at") and t.get("finished_at"):
        out["total_s"] = t["finished_at"] - t["queued_at"]
    decode_s = (t.get("finished_at") or 0) - (t.get("first_token_at") or 0)
    if t.get("first_token_at") and decode_s > 0 and usage.get("completion_tokens"):
        out["tokens_per_s"] = usage["completion_tokens"] / decode_s
    return out
