"""The way back to callers: each request's detokenizer and stop strings (`OutputStream`) and the
asyncio queue its `generate()` awaits, filled from the step thread with `call_soon_threadsafe`.

A step's events are posted together: one callback per caller event loop per step (`flush`), not one
per request, so 64 streams wake their loop once a step rather than 64 times (each wake is a write to
the loop's self-pipe, and the loop's thread competes with this one for the interpreter)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from vireo.inference.api import EngineEvent, Finished, RequestTimes, TokenDelta, Usage
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
    first_token_at: float | None = None  # wall clock of the step that sent its first token


class RequestOutputs:
    """The live requests by id: text for each new token, deltas after each step, the final event."""

    def __init__(self) -> None:
        self.channels: dict[str, RequestChannel] = {}
        self._unsent: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, EngineEvent]]] = {}

    def _send(self, channel: RequestChannel, event: EngineEvent) -> None:
        self._unsent.setdefault(channel.loop, []).append((channel.events, event))

    def flush(self) -> None:
        """Hand every event of this step to its caller's loop, one callback per loop."""
        unsent, self._unsent = self._unsent, {}
        for loop, events in unsent.items():
            try:
                loop.call_soon_threadsafe(_put_all, events)
            except RuntimeError:  # that caller's loop is closed: nobody is listening any more
                pass

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
            if channel.first_token_at is None:
                channel.first_token_at = time.time()
            self._send(channel, TokenDelta(update.seq.request_id, text, update.shown, update.logprobs))

    def finish(self, seq: Sequence, error: str | None = None) -> None:
        """Flush the held-back text (unless aborted) and send `Finished`; forget the request."""
        channel = self.channels.pop(seq.request_id)
        reason = seq.finish_reason
        assert reason is not None  # the scheduler finished it before its output is finished
        tail = channel.stream.finish() if reason != "abort" else ""
        if tail:
            self._send(channel, TokenDelta(seq.request_id, tail, []))
        usage = Usage(seq.num_prompt_tokens, seq.num_completion_tokens, seq.num_cached_tokens)
        times = RequestTimes(seq.received_at, seq.scheduled_at, channel.first_token_at)
        self._send(channel, Finished(seq.request_id, reason, channel.stream.text, usage, error=error, times=times))


def _put_all(events: list[tuple[asyncio.Queue, EngineEvent]]) -> None:
    for queue, event in events:
        queue.put_nowait(event)
