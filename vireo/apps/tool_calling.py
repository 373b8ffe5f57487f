"""One reply that may call tools: the model decides in free text, constrained decoding writes the call.

`auto`: the model writes freely; text that may be the start of `<tool_call>` is held back (like a stop
string) and the rest streams as content. When the model writes the opening tag itself, that
generation stops and the call is written under constraints, continuing the same prompt (the prefix
cache makes each continuation cheap): first the function name, chosen from the tools' names, then
the arguments, constrained to that tool's JSON schema, so they always parse and match it.
`required` and a named tool skip the free start: the reply is a call from its first token.
With `parallel_tool_calls`, after each call the model may open another one (a few tokens, free).

Why not one grammar for the whole reply ("text | call")? A grammar would have to guess where free
text may turn into a call; letting the model write the tag keeps `auto` the model's own choice, and
the call itself still cannot come out malformed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace

from vireo.apps.base import AppContext
from vireo.apps.chat_tools import (
    CALL_CLOSE,
    CALL_OPEN,
    NamedToolChoice,
    Tool,
    ToolCall,
    ToolCallFunction,
    ToolChoice,
    call_text,
)
from vireo.inference.api import Constraint, GenerationRequest, SamplingParams
from vireo.inference.textstream import StopMatcher

MAX_CALLS = 8  # calls in one reply, at most


@dataclass
class Reply:
    """A choice's reply: text (content), any tool calls, and why it ended."""

    text: str
    finish_reason: str  # stop | length | tool_calls (and the engine's others)
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0  # the conversation's (the first generation's prompt)
    completion_tokens: int = 0  # every generation's, together


@dataclass
class ToolCallingReply:
    """Writes one choice's reply to `prompt` (the rendered conversation) with `tools` on offer."""

    ctx: AppContext
    prompt: str
    sampling: SamplingParams
    tools: list[Tool]
    choice: ToolChoice
    parallel: bool = True
    index: int = 0  # the choice number, for streaming
    used: int = 0  # completion tokens spent so far, out of sampling.max_tokens
    prompt_tokens: int = 0

    async def run(self) -> Reply:
        text, finish, calls = await self._write()
        return Reply(text, finish, calls, self.prompt_tokens, self.used)

    async def _write(self) -> tuple[str, str, list[ToolCall]]:
        text = ""
        if self.choice == "auto":
            text, opened, finish = await self._text_until_call()
            if not opened:
                return text, finish, []
        calls: list[ToolCall] = []
        prefix = self.prompt + text + CALL_OPEN + "\n"
        while True:
            call, finish = await self._call(prefix, len(calls))
            if call is not None:
                calls.append(call)
            if call is None or finish != "stop":  # out of tokens (or aborted) inside the call
                return text, finish, calls
            prefix += call_text(call.function.name, call.function.arguments) + "\n" + CALL_CLOSE
            if isinstance(self.choice, NamedToolChoice) or not self.parallel or len(calls) >= MAX_CALLS:
                break
            if not await self._opens_another(prefix):
                break
            prefix += "\n" + CALL_OPEN + "\n"
        return text, "tool_calls", calls

    def _sampling(self, most: int | None = None, free_text: bool = False) -> SamplingParams:
        """The reply's sampling with what is left of its token budget (at most `most`); the client's
        stop strings apply to free text only, never inside a call."""
        left = max(1, self.sampling.max_tokens - self.used)
        return replace(
            self.sampling, max_tokens=min(left, most) if most else left, stop=self.sampling.stop if free_text else []
        )

    async def _run(self, request: GenerationRequest, on_text=None):
        final = await self.ctx.stream(request, emit=False, index=self.index, on_text=on_text)
        self.used += final.usage.completion_tokens
        self.prompt_tokens = self.prompt_tokens or final.usage.prompt_tokens
        return final

    async def _text_until_call(self) -> tuple[str, bool, str]:
        """Free text until the model opens a call: (text, opened, finish_reason)."""
        watch = StopMatcher([CALL_OPEN])

        def on_text(piece: str) -> bool:
            if shown := watch.push(piece):
                self.ctx.emit(shown, self.index)
            return watch.stopped

        final = await self._run(
            GenerationRequest(prompt=self.prompt, sampling=self._sampling(free_text=True)), on_text=on_text
        )
        if not watch.stopped and (tail := watch.flush()):
            self.ctx.emit(tail, self.index)
        return watch.emitted, watch.stopped, final.finish_reason

    async def _call(self, prefix: str, number: int) -> tuple[ToolCall | None, str]:
        """One call after `prefix` (which ends in the opening tag): name, then schema-bound arguments.

        None when the token budget ran out before the name was whole."""
        prefix += '{"name": '
        tool = await self._pick_tool(prefix)
        if tool is None or self.used >= self.sampling.max_tokens:
            return None, "length"
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        self.ctx.emit_tool_call(self.index, number, id=call_id, name=tool.function.name)
        prefix += json.dumps(tool.function.name) + ', "arguments": '

        def stream_arguments(piece: str) -> None:
            self.ctx.emit_tool_call(self.index, number, arguments=piece)

        constraint = Constraint(json_schema=tool.function.arguments_schema)
        final = await self._run(
            GenerationRequest(prompt=prefix, sampling=self._sampling(), constraint=constraint), on_text=stream_arguments
        )
        call = ToolCall(id=call_id, function=ToolCallFunction(name=tool.function.name, arguments=final.text))
        return call, final.finish_reason

    async def _pick_tool(self, prefix: str) -> Tool | None:
        """The named tool, the only tool, or the one whose name the model writes (constrained)."""
        if isinstance(self.choice, NamedToolChoice):
            return next(t for t in self.tools if t.function.name == self.choice.function.name)
        if len(self.tools) == 1:
            return self.tools[0]
        by_name = {json.dumps(t.function.name): t for t in self.tools}
        final = await self._run(
            GenerationRequest(prompt=prefix, sampling=self._sampling(), constraint=Constraint(choices=list(by_name)))
        )
        return by_name.get(final.text)

    async def _opens_another(self, prefix: str) -> bool:
        """After a closed call, does the model open another? (a few free tokens, not shown)"""
        budget = self.ctx.engine.count_tokens("\n" + CALL_OPEN) + 1
        if self.sampling.max_tokens - self.used < budget + 4:
            return False
        final = await self._run(GenerationRequest(prompt=prefix, sampling=self._sampling(most=budget)))
        return final.text.lstrip().startswith(CALL_OPEN)
