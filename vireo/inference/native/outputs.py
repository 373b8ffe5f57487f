"""The way back to callers: each request's detokenizer and stop strings (`OutputStream`) and the
asyncio queue its `generate()` awaits, filled from the step thread with `call_soon_threadsafe`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from vireo.inference.api import EngineEvent, Finished, TokenDelta, Usage
from vireo.inference.native.scheduling.batch import SeqUpdate
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.textstream import OutputStream


@dataclass(eq=False)
class RequestChannel:
    """A sequence plus its text stream and the channel back to its caller's event loop."""

    seq: Sequence
    stream: OutputStream
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue
    pending_text: str = ""  # this step's text, not yet sent

    def send(self, event: EngineEvent) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class RequestOutputs:
    """The live requests by id: text for each new token, deltas after each step, the final event."""

    def __init__(self) -> None:
        self.channels: dict[str, RequestChannel] = {}

    def add(self, channel: RequestChannel) -> None:
        self.channels[channel.seq.request_id] = channel

    def get(self, request_id: str) -> RequestChannel | None:
        return self.channels.get(request_id)

    def push(self, seq: Sequence, token: int) -> bool:
        """Detokenize one shown token (its text goes out with the step's delta); True once a stop
        string has appeared (`Scheduler.update` asks this for every shown token)."""
        channel = self.channels[seq.request_id]
        channel.pending_text += channel.stream.push([token])
        return channel.stream.stopped

    def deliver(self, update: SeqUpdate) -> None:
        """Send the step's tokens of one sequence (nothing if all it got was EOS)."""
        channel = self.channels[update.seq.request_id]
        text, channel.pending_text = channel.pending_text, ""
        if update.shown:
            channel.send(TokenDelta(update.seq.request_id, text, update.shown, update.logprobs))

    def finish(self, seq: Sequence, error: str | None = None) -> None:
        """Flush the held-back text (unless aborted) and send `Finished`; forget the request."""
        channel = self.channels.pop(seq.request_id)
        reason = seq.finish_reason
        assert reason is not None  # the scheduler finished it before its output is finished
        tail = channel.stream.finish() if reason != "abort" else ""
        if tail:
            channel.send(TokenDelta(seq.request_id, tail, []))
        usage = Usage(seq.num_prompt_tokens, seq.num_completion_tokens, seq.num_cached_tokens)
        channel.send(Finished(seq.request_id, reason, channel.stream.text, usage, error=error))
