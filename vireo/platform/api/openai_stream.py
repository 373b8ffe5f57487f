"""A job's events as OpenAI stream chunks: n choices, tool-call deltas, restarts, the usage chunk.

Token events carry the choice's `index` (absent: 0); `tool_call` events open a call (`id`, `name`)
and then carry pieces of its `arguments`; the `result` event closes every choice with its
finish reason. Each piece of text goes through a `RestartSplice` of its own channel (a choice's
content, a call's name, a call's arguments), so a job that starts over on another worker never
sends the same text twice.
"""

from __future__ import annotations

from vireo.platform.api.openai_tools import choices_of, finish_reason


class RestartSplice:
    """Keeps a streamed reply to one attempt's text when its job starts over (the worker died).

    Sent text cannot be taken back, so a new attempt's tokens are held until they either reproduce
    what was sent, and only what goes beyond it is sent (greedy or seeded requests continue
    seamlessly), or differ from it, and the stream ends with an error chunk. (A reply that is not
    streamed is the finished job's result: the last attempt's text alone.)"""

    def __init__(self) -> None:
        self.sent = ""
        self.replay: str | None = None  # the new attempt's text while it has not passed `sent`

    def restart(self) -> None:
        self.replay = "" if self.sent else None

    def feed(self, text: str) -> str | None:
        """What of `text` to send now ("" to hold it back); None once the new attempt diverged."""
        if self.replay is None:
            self.sent += text
            return text
        self.replay += text
        if self.sent.startswith(self.replay):
            return ""
        if not self.replay.startswith(self.sent):
            return None
        extra, self.sent, self.replay = self.replay[len(self.sent) :], self.replay, None
        return extra

    def diverged_at_end(self) -> bool:
        return self.replay is not None and self.replay != self.sent


RESTART_DIVERGED = (
    "the worker generating this reply stopped, and the restarted generation differs from the "
    "text already sent, so the reply ends here; send the request again (temperature 0 or a "
    "seed gives a reply that survives a restart)"
)


class RestartDiverged(Exception):
    """The restarted attempt wrote something other than what the client already has."""


class Chunks:
    """Turns one job's events into OpenAI chunk dicts (chat here; `CompletionChunks` below)."""

    object = "chat.completion.chunk"

    def __init__(self, cid: str, created: int, model: str, include_usage: bool = False):
        self.cid, self.created, self.model, self.include_usage = cid, created, model, include_usage
        self.started: set[int] = set()  # choices that sent their first chunk
        self.splices: dict[tuple, RestartSplice] = {}

    def on_event(self, kind: str, data: dict) -> list[dict]:
        """The chunks an event becomes (often none); raises RestartDiverged."""
        if kind == "attempt":
            for splice in self.splices.values():
                splice.restart()
        elif kind == "token":
            text = self._spliced(("content", data.get("index", 0)), data["text"])
            return [self.chunk(data.get("index", 0), text)] if text else []
        elif kind == "tool_call":
            return self._tool_call(data)
        elif kind == "result":
            if any(s.diverged_at_end() for s in self.splices.values()):
                raise RestartDiverged
            return [self._finish(choice) for choice in choices_of(data["result"])]
        elif kind == "error":
            return [{"error": {"message": data["error"], "type": "invalid_request_error"}}]
        return []

    def usage_chunk(self, usage: dict) -> dict:
        """The last chunk before [DONE] when the client asked for usage: no choices, the job's tokens."""
        return self._envelope([]) | {"usage": usage}

    def _spliced(self, channel: tuple, text: str) -> str:
        sent = self.splices.setdefault(channel, RestartSplice()).feed(text)
        if sent is None:
            raise RestartDiverged
        return sent

    def _envelope(self, choices: list[dict]) -> dict:
        out = {"id": self.cid, "object": self.object, "created": self.created, "model": self.model, "choices": choices}
        return out | ({"usage": None} if self.include_usage else {})

    def chunk(self, index: int, text: str, finish: str | None = None) -> dict:
        first = index not in self.started
        self.started.add(index)
        delta = ({"role": "assistant"} if first else {}) | ({"content": text} if text or first else {})
        return self._envelope([{"index": index, "delta": delta, "finish_reason": finish}])

    def _finish(self, choice: dict) -> dict:
        """Close a choice; a choice that streamed nothing (a caption) sends its whole text here."""
        index = choice["index"]
        text = choice["text"] if index not in self.started else ""
        return self.chunk(index, text, finish_reason(choice))

    def _tool_call(self, data: dict) -> list[dict]:
        index, call = data.get("index", 0), data["call"]
        if data.get("name") is not None:
            if not self._spliced(("name", index, call), data["name"]):
                return []  # a restarted attempt reopening a call the client has
            piece = {
                "index": call,
                "id": data["id"],
                "type": "function",
                "function": {"name": data["name"], "arguments": ""},
            }
        else:
            arguments = self._spliced(("arguments", index, call), data["arguments"])
            if not arguments:
                return []
            piece = {"index": call, "function": {"arguments": arguments}}
        first = index not in self.started
        self.started.add(index)
        delta = ({"role": "assistant", "content": None} if first else {}) | {"tool_calls": [piece]}
        return [self._envelope([{"index": index, "delta": delta, "finish_reason": None}])]


class CompletionChunks(Chunks):
    """`text_completion` chunks: text only, no roles or tool calls."""

    object = "text_completion"

    def chunk(self, index: int, text: str, finish: str | None = None) -> dict:
        self.started.add(index)
        return self._envelope([{"index": index, "text": text, "finish_reason": finish, "logprobs": None}])
