"""Chat: multi-turn conversation (or a raw completion prompt), streamed; the OpenAI endpoints use it.

The server keeps no conversation state: the client sends the previous messages (and a
`session_id` to tie turns together) with each turn and gets the updated history back. Re-sent
history is cheap because the engine's prefix cache recognises it. When a conversation outgrows
the context, the oldest turns are dropped (the system prompt and the latest message stay).
`n` answers are sampled at once (the engine batches them); `tools` may be called (tool_calling.py).
A raw prompt may be text or token ids, or a list of such prompts (each answered `n` times), echoed
in front of its answers and scored: `logprobs` (completion_logprobs.py) gives each token its
log-probability, from one forward pass after the answer is written.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Callable, Literal

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, AppInputError, TechniquePreferences
from vireo.apps.chat_tools import NamedToolChoice, Tool, ToolCall, ToolChoice, has_tool_history, tool_request
from vireo.apps.completion_logprobs import MAX_TOP_LOGPROBS, CompletionLogprobs, completion_logprobs
from vireo.apps.tool_calling import Reply, ToolCallingReply
from vireo.inference.api import Constraint, Engine, GenerationRequest

Prompt = str | list[int]  # a raw prompt: text, or token ids as the model's tokenizer makes them
MAX_CHOICES = 128  # prompts × n, at most, in one job


class OutputConstraint(BaseModel):
    """Restrict the reply to one of `choices`, a `regex`, or JSON matching `json_schema` (one of them)."""

    choices: list[str] | None = Field(None, min_length=1, max_length=256)
    regex: str | None = Field(None, min_length=1, max_length=2000)
    json_schema: dict | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "OutputConstraint":
        if sum(x is not None for x in (self.choices, self.regex, self.json_schema)) != 1:
            raise ValueError("give exactly one of choices, regex or json_schema")
        return self

    def to_engine(self) -> Constraint:
        return Constraint(choices=self.choices, regex=self.regex, json_schema=self.json_schema)


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] | None = Field(None, description="An assistant turn's calls of tools.")
    tool_call_id: str | None = Field(None, description="A tool turn: the id of the call it answers.")

    @model_validator(mode="after")
    def _content_or_calls(self) -> "ChatMessage":
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.content is None and not self.tool_calls:
            raise ValueError(f"a {self.role} message needs content")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        return self


class ChatInput(BaseModel):
    messages: list[ChatMessage] | None = Field(None, description="The conversation so far, oldest first.")
    prompt: str | list[int] | list[Prompt] | None = Field(
        None,
        description="A raw prompt to continue (instead of messages): text, token ids, or a list of prompts "
        "(choice p * n + i is answer i to prompt p).",
    )
    system: str | None = Field(None, description="A system prompt placed before the messages.")
    session_id: str | None = Field(
        None, max_length=128, description="Ties the turns of one conversation together; echoed back."
    )
    overflow: Literal["drop_oldest", "error"] = Field(
        "drop_oldest", description="When the conversation outgrows the context: drop the oldest turns, or fail."
    )
    max_tokens: int = Field(256, ge=0, le=4096, description="0 (with echo): write nothing, only score the prompt.")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    echo: bool = Field(False, description="Raw prompts: each choice's text (and logprobs) starts with its prompt.")
    logprobs: bool = Field(
        False,
        description="Each choice's tokens with their log-probabilities (OpenAI's completion shape), scored after "
        "the answer is written (native and hf engines).",
    )
    top_logprobs: int = Field(
        0, ge=0, le=MAX_TOP_LOGPROBS, description="With logprobs: the most likely tokens at each position."
    )
    constraint: OutputConstraint | None = Field(
        None, description="Constrain the reply (native and vllm engines; the hf engine refuses)."
    )
    n: int = Field(1, ge=1, le=8, description="How many answers to sample (each with seed + i when seeded).")
    tools: list[Tool] | None = Field(None, max_length=128, description="Functions the model may call.")
    tool_choice: ToolChoice | None = Field(
        None, description="none, auto (the default with tools), required, or {'function': {'name': ...}}."
    )
    parallel_tool_calls: bool = Field(True, description="Allow several calls in one reply.")

    @model_validator(mode="after")
    def _one_source(self) -> "ChatInput":
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give either messages or prompt")
        if self.messages is not None and not self.messages:
            raise ValueError("messages is empty: send at least one message")
        if isinstance(self.prompt, list) and (not self.prompt or any(p == [] for p in self.prompt)):
            raise ValueError("prompt is empty: a token-id prompt needs at least one token")
        if len(self.prompts) * self.n > MAX_CHOICES:
            raise ValueError(f"prompts × n is {len(self.prompts) * self.n}; one job answers at most {MAX_CHOICES}")
        return self

    @model_validator(mode="after")
    def _scoring_fits(self) -> "ChatInput":
        if self.echo and self.prompt is None:
            raise ValueError("echo repeats a raw prompt: give prompt, not messages")
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens 0 writes nothing: use it with echo, to score the prompt")
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs")
        if self.logprobs and self.calls_offered:
            raise ValueError("logprobs are not given for replies that may call tools")
        return self

    @property
    def prompts(self) -> list[Prompt]:
        """The raw prompts, each text or token ids ([] for a conversation)."""
        if self.prompt is None:
            return []
        if isinstance(self.prompt, str) or any(isinstance(t, int) for t in self.prompt):
            return [self.prompt]  # type: ignore[list-item]  # one prompt: text, or token ids
        return list(self.prompt)  # type: ignore[arg-type]  # a list of prompts

    @model_validator(mode="after")
    def _tools_fit(self) -> "ChatInput":
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be unique")
        if self.tool_choice not in (None, "none", "auto") and not names:
            raise ValueError("tool_choice asks for a tool call but no tools were given")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in names:
            raise ValueError(
                f"tool_choice names {self.tool_choice.function.name!r}, which is not among the "
                f"tools ({', '.join(names)})"
            )
        if self.calls_offered and self.prompt is not None:
            raise ValueError("tools need messages, not a raw prompt")
        if self.calls_offered and self.constraint is not None:
            raise ValueError("give tools or a constraint (response_format), not both")
        return self

    @property
    def calls_offered(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"


class ChatChoice(BaseModel):
    """One of the `n` sampled answers."""

    index: int
    text: str
    finish_reason: str = Field(..., description="stop, length, or tool_calls when the reply calls tools.")
    tool_calls: list[ToolCall] | None = None
    logprobs: CompletionLogprobs | None = Field(None, description="With logprobs: the choice's tokens, scored.")


class ChatOutput(BaseModel):
    text: str
    finish_reason: str
    tool_calls: list[ToolCall] | None = Field(None, description="The tools the reply calls (first answer).")
    choices: list[ChatChoice] = Field(
        default_factory=list, description="All n answers; the first is also text, finish_reason and tool_calls."
    )
    prompt_tokens: int = Field(..., description="The conversation's tokens (every prompt's, for several).")
    completion_tokens: int = Field(..., description="Tokens generated, for all answers.")
    session_id: str | None = Field(None, description="The conversation's id (new when none was sent).")
    messages: list[ChatMessage] | None = Field(
        None, description="The history to send with the next turn: the kept messages plus this reply."
    )
    dropped_messages: int = Field(0, description="Oldest messages left out to fit the context.")


class ChatApp(App[ChatInput]):
    name = "chat"
    title = "Chat"
    description = "Talk with the model: multi-turn, with an optional system prompt."
    Input = ChatInput
    Output = ChatOutput
    preferences = TechniquePreferences(prefix_cache=True)  # later turns reuse earlier turns' KV

    @staticmethod
    def conversation(input: ChatInput) -> list[dict]:
        """The messages as the model sees them, with `system` replacing any system message."""
        messages = [m.model_dump(exclude_none=True) for m in input.messages or []]
        if input.system:
            messages = [{"role": "system", "content": input.system}] + [m for m in messages if m["role"] != "system"]
        return messages

    @staticmethod
    def fit(messages: list[dict], budget: int, count_tokens) -> tuple[list[dict], int]:
        """Drop the oldest non-system messages until the rest fit `budget` tokens."""
        kept, dropped = list(messages), 0
        while sum(count_tokens(m.get("content") or "") + 8 for m in kept) > budget:
            oldest = next((i for i, m in enumerate(kept[:-1]) if m["role"] != "system"), None)
            if oldest is None:
                break
            kept.pop(oldest)
            dropped += 1
        return kept, dropped

    def build_request(
        self, ctx: AppContext, input: ChatInput, messages: list[dict] | None = None, prompt: Prompt | None = None
    ) -> GenerationRequest:
        """The engine request for `prompt` (text or token ids), else for the conversation."""
        sampling = ctx.sampling(
            max_tokens=max(input.max_tokens, 1),  # 0 (echo only) generates nothing: see `answer`
            temperature=input.temperature,
            top_p=input.top_p,
            stop=input.stop,
            seed=input.seed,
        )
        constraint = input.constraint.to_engine() if input.constraint else None
        if prompt is None and input.prompt is not None:
            prompt = input.prompts[0]
        if isinstance(prompt, list):
            return GenerationRequest(prompt_token_ids=prompt, sampling=sampling, constraint=constraint)
        if prompt is not None:
            return GenerationRequest(prompt=prompt, sampling=sampling, constraint=constraint)
        return GenerationRequest(
            messages=messages or self.conversation(input), sampling=sampling, constraint=constraint
        )

    def validate_for_engine(self, input: ChatInput, engine_context_length: int, count_tokens) -> None:
        if input.prompt is not None:
            for prompt in input.prompts:
                tokens = len(prompt) if isinstance(prompt, list) else count_tokens(prompt)
                if tokens >= engine_context_length:
                    raise AppInputError(
                        f"the prompt is {tokens} tokens; the model's context holds {engine_context_length}. "
                        "Shorten it and try again"
                    )
            return
        if input.overflow == "drop_oldest":  # only the system prompt and the last message must fit
            assert input.messages is not None  # ChatInput's validator: messages when there is no prompt
            texts = [m["content"] for m in self.conversation(input) if m["role"] == "system"] + [
                input.messages[-1].content or ""
            ]
        else:
            texts = [m.get("content") or "" for m in self.conversation(input)]
        tokens = sum(count_tokens(t) for t in texts)
        if tokens >= engine_context_length:
            raise AppInputError(
                f"the conversation is {tokens} tokens; the model's context holds "
                f"{engine_context_length}. Drop older turns and try again"
            )

    async def run(self, ctx: AppContext, input: ChatInput) -> ChatOutput:
        messages, dropped = None, 0
        if input.messages is not None:
            budget = ctx.engine.context_length - min(input.max_tokens, ctx.engine.context_length // 2)
            messages, dropped = self.conversation(input), 0
            if input.overflow == "drop_oldest":
                messages, dropped = self.fit(messages, budget, ctx.engine.count_tokens)
        sources: list[Prompt | None] = [*input.prompts] or [None]  # None: the conversation
        answers = await asyncio.gather(
            *(
                self.answer(ctx, input, messages, prompt, p * input.n + i, i)
                for p, prompt in enumerate(sources)
                for i in range(input.n)
            )
        )
        choices, replies = [a[0] for a in answers], [a[1] for a in answers]
        first = replies[0]
        history = None
        if messages is not None:
            history = [ChatMessage(**m) for m in messages] + [
                ChatMessage(
                    role="assistant",
                    content=first.text if first.text or not first.tool_calls else None,
                    tool_calls=first.tool_calls or None,
                )
            ]
        return ChatOutput(
            text=choices[0].text,
            finish_reason=first.finish_reason,
            tool_calls=first.tool_calls or None,
            choices=choices,
            prompt_tokens=sum(r.prompt_tokens for r in replies[:: input.n]),  # each prompt's first answer
            completion_tokens=sum(r.completion_tokens for r in replies),
            session_id=input.session_id or uuid.uuid4().hex,
            messages=history,
            dropped_messages=dropped,
        )

    async def answer(
        self,
        ctx: AppContext,
        input: ChatInput,
        messages: list[dict] | None,
        prompt: Prompt | None,
        index: int,
        sample: int,
    ) -> tuple[ChatChoice, Reply]:
        """Choice `index`: answer `sample` (seeded seed + sample) to `prompt` (None: the conversation),
        behind the prompt when echoed, with its tokens' log-probabilities when asked."""
        request = self.build_request(ctx, input, messages, prompt)
        if sample and request.sampling.seed is not None:
            request.sampling.seed += sample
        completion_ids: list[int] = []
        if input.max_tokens == 0:  # echo only: the prompt is read, nothing is written
            prompt_tokens = len(prompt) if isinstance(prompt, list) else ctx.engine.count_tokens(prompt or "")
            ctx.record_usage(prompt_tokens, 0)
            reply = Reply("", "length", prompt_tokens=prompt_tokens)
        else:
            reply = await self.reply(ctx, input, request, index, completion_ids.extend)
        logprobs = None
        if input.logprobs:
            prompt_ids = self.prompt_ids(ctx.engine, request)
            logprobs = await completion_logprobs(ctx.engine, prompt_ids, completion_ids, input.top_logprobs, input.echo)
        echoed = self.prompt_text(ctx.engine, prompt) if input.echo else ""
        choice = ChatChoice(
            index=index,
            text=echoed + reply.text,
            finish_reason=reply.finish_reason,
            tool_calls=reply.tool_calls or None,
            logprobs=logprobs,
        )
        return choice, reply

    async def reply(
        self,
        ctx: AppContext,
        input: ChatInput,
        request: GenerationRequest,
        index: int,
        on_token_ids: Callable[[list[int]], None] | None = None,
    ) -> Reply:
        """Write choice `index` for `request`, streamed as that choice; a reply that may call tools
        calls them (tool_calling.py). `on_token_ids` receives the tokens written (no tools)."""
        if request.messages is not None and (input.tools or has_tool_history(request.messages)):
            offered = input.tools if input.calls_offered else None  # calls_offered: tools is not empty
            shown = tool_request(ctx.engine, request.messages, offered)
            request.messages, request.tools = shown.messages, shown.tools
            if offered:
                writer = ToolCallingReply(
                    ctx,
                    ctx.engine.render(request),
                    request.sampling,
                    offered,
                    input.tool_choice or "auto",
                    input.parallel_tool_calls,
                    index,
                )
                return await writer.run()
        final = await ctx.stream(request, index=index, on_token_ids=on_token_ids)
        return Reply(
            final.text,
            final.finish_reason,
            prompt_tokens=final.usage.prompt_tokens,
            completion_tokens=final.usage.completion_tokens,
        )

    @staticmethod
    def prompt_ids(engine: Engine, request: GenerationRequest) -> list[int]:
        """The prompt's tokens as the engine read them (the conversation rendered, a text encoded)."""
        if request.prompt_token_ids is not None:
            return request.prompt_token_ids
        ids = engine.encode(engine.render(request))
        if not ids:
            raise AppInputError("logprobs need a prompt of at least one token; the prompt is empty")
        return ids

    @staticmethod
    def prompt_text(engine: Engine, prompt: Prompt | None) -> str:
        """An echoed prompt: its text, or its token ids decoded."""
        return engine.decode(prompt) if isinstance(prompt, list) else prompt or ""
