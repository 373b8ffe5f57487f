"""The `openai` backend: any OpenAI-compatible server (vLLM, Vireo itself, ...) reached by URL.

Chat requests go to `/v1/chat/completions`, raw prompts to `/v1/completions`, both streamed.
Aborting closes the HTTP stream, which makes vLLM-style servers abort the request. `score()` asks
`/v1/completions` to echo the prompt with logprobs. Token counts and chat rendering use the model's
tokenizer when the model resolves in the local registry; otherwise they are labelled approximations
(`exact_tokens` is False) and prompt-length errors are left to the server.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol, cast

from vireo.inference.api import (
    Constraint,
    Engine,
    EngineError,
    EngineEvent,
    EngineStats,
    Finished,
    FinishReason,
    GenerationRequest,
    PromptTooLongError,
    TokenDelta,
    Usage,
)
from vireo.inference.backends.counters import TokenCounters
from vireo.inference.embedder import Embedder, shared_embedder
from vireo.inference.local import EngineConfig

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English BPE vocabularies
FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "abort": "abort", "error": "error"}


class _Stream(Protocol):
    """A streamed completion (openai's `AsyncStream` of chat or completion chunks)."""

    def __aiter__(self) -> AsyncIterator[Any]: ...

    async def close(self) -> None: ...


@dataclass
class _Call:
    """One in-flight streamed request, so `abort()` can close its stream."""

    stream: _Stream | None = None  # None until the server answers
    aborted: bool = False


class OpenAIEngine(Engine):
    """A remote model behind an OpenAI-compatible API."""

    backend = "openai"
    accepts_images = True  # sent as image parts; the server's model decides whether it can see them

    def __init__(self, config: EngineConfig, embedder: Embedder | None = None):
        if not config.openai_base_url:
            raise EngineError(
                "the openai backend needs a server URL (VIREO_OPENAI_BASE_URL, e.g. http://127.0.0.1:8000/v1)"
            )
        self.config = config
        self.base_url = _with_v1(config.openai_base_url)
        self.model_name = config.openai_model or config.model
        self.context_length = config.max_model_len or 0
        self.tokenizer = _local_tokenizer(config)
        self.exact_tokens = self.tokenizer is not None
        self._embedder = embedder or shared_embedder()
        self._client: AsyncOpenAI | None = None
        self._calls: dict[str, _Call] = {}
        self._counters = TokenCounters()

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._client is not None:
            return
        from openai import AsyncOpenAI

        # No retries: a retried generation would run twice on the server.
        self._client = AsyncOpenAI(
            base_url=self.base_url, api_key=self.config.openai_api_key or "EMPTY", max_retries=0, timeout=600.0
        )
        await self._read_model_card()

    def _started(self) -> AsyncOpenAI:
        """The client `start()` made."""
        assert self._client is not None, "the openai engine is not started"
        return self._client

    async def _read_model_card(self) -> None:
        """Check the model is served and take its context length (vLLM's `max_model_len`)."""
        import openai

        try:
            served = [m async for m in self._started().models.list()]
        except openai.APIError as exc:
            raise EngineError(f"cannot list models at {self.base_url}: {exc}") from exc
        served = [m for m in served if _generates(m)]  # a Vireo server lists its embedding model too
        by_id = {m.id: m for m in served}
        if self.model_name not in by_id:
            if self.config.openai_model or len(served) != 1:
                raise EngineError(
                    f"model {self.model_name!r} is not served at {self.base_url}; "
                    f"it serves: {', '.join(by_id) or 'nothing'}"
                )
            self.model_name = served[0].id  # a single-model server: use what it serves
        remote_len = getattr(by_id[self.model_name], "max_model_len", None)
        if remote_len:
            self.context_length = min(self.context_length or remote_len, remote_len)

    async def shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    # --- text and tokens -----------------------------------------------------------------------
    def render(self, request: GenerationRequest) -> str:
        if request.prompt_token_ids is not None:
            return self.tokenizer.decode(request.prompt_token_ids) if self.tokenizer is not None else ""
        if request.messages is None:
            return request.prompt or ""
        if self.tokenizer is not None:
            return self.tokenizer.apply_chat_template(
                request.messages, tools=request.tools, tokenize=False, add_generation_prompt=True
            )
        # Approximation: the server applies its own template; this only sizes and shows the prompt.
        return "".join(f"{m['role']}: {m['content']}\n" for m in request.messages) + "assistant: "

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return math.ceil(len(text) / CHARS_PER_TOKEN)  # approximate: see `exact_tokens`

    def _check_length(self, request: GenerationRequest) -> int:
        """Prompt tokens; refuses (or clamps max_tokens) before any work when counts are exact."""
        ids = request.prompt_token_ids
        n = len(ids) if ids is not None else self.count_tokens(self.render(request))
        if (self.exact_tokens or ids is not None) and self.context_length:
            if n >= self.context_length:
                raise PromptTooLongError(n, request.sampling.max_tokens, self.context_length)
            request.sampling.max_tokens = min(request.sampling.max_tokens, self.context_length - n)
        return n

    # --- generation ----------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        await self.start()
        prompt_tokens = self._check_length(request)
        rid = request.request_id
        call = self._calls[rid] = _Call()
        text, deltas, reason, usage, error = [], 0, None, None, None
        try:
            call.stream = await self._open_stream(request)
            if call.aborted:  # abort() came while the server was answering
                await call.stream.close()
            async for chunk in call.stream:
                usage = chunk.usage or usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                piece, logprobs = _chunk_text(choice, chat=request.messages is not None)
                if piece:
                    text.append(piece)
                    deltas += 1
                    self._counters.add_generated(len(logprobs) if logprobs else 1)
                    yield TokenDelta(rid, piece, [], logprobs)
                reason = choice.finish_reason or reason
        except EngineError:
            raise
        except Exception as exc:  # a closed stream (abort) or a failed server: end with an event
            if not call.aborted:
                error = f"{type(exc).__name__}: {exc}"
        finally:
            self._calls.pop(rid, None)
            if call.stream is not None:
                await call.stream.close()
        yield self._finished(request, text, reason, usage, error, call.aborted, prompt_tokens, deltas)

    async def _open_stream(self, request: GenerationRequest) -> _Stream:
        import openai

        args = self._request_arguments(request)
        client = self._started()
        try:
            if request.messages is not None:  # OpenAI-shaped message dicts, as the API took them
                messages = cast("list[ChatCompletionMessageParam]", _with_images(request.messages, request.images))
                return await client.chat.completions.create(messages=messages, stream=True, **args)
            if request.images:
                raise EngineError("images go with chat messages; a raw prompt cannot show them")
            prompt = request.prompt_token_ids if request.prompt_token_ids is not None else request.prompt or ""
            return await client.completions.create(prompt=prompt, stream=True, **args)
        except openai.BadRequestError as exc:
            raise EngineError(f"{self.base_url} refused the request: {_server_message(exc)}") from exc

    def _request_arguments(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        # `stream=True` is passed by `_open_stream` itself (it picks the streaming overloads)
        args: dict[str, Any] = dict(
            model=request.model or self.model_name,
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            stream_options={"include_usage": True},
        )
        if s.stop:
            args["stop"] = list(s.stop)
        if s.seed is not None:
            args["seed"] = s.seed
        if s.logprobs:
            args["logprobs"] = True if request.messages is not None else 1
        # Fields beyond the OpenAI API, understood by vLLM-compatible servers; sent only when used.
        extra: dict[str, Any] = {}
        if s.top_k:
            extra["top_k"] = s.top_k
        if s.ignore_eos:
            extra["ignore_eos"] = True
        if request.priority:
            extra["priority"] = request.priority
        structured = _structured_outputs(request.constraint)
        if structured:
            extra["structured_outputs"] = structured
        if extra:
            args["extra_body"] = extra
        return args

    def _finished(self, request, text, reason, usage, error, aborted, prompt_tokens, deltas) -> Finished:
        completion = usage.completion_tokens if usage else deltas
        prompt = usage.prompt_tokens if usage else prompt_tokens
        cached = _cached_tokens(usage)
        self._counters.add_prompt(request.app, prompt, cached)
        finish: FinishReason
        if aborted:
            finish, error = "abort", None
        elif error or not reason:
            finish, error = "error", error or "the server's stream ended without a finish reason"
        else:
            finish = FINISH_REASONS.get(reason, "stop")  # e.g. "tool_calls", "content_filter"
        return Finished(request.request_id, finish, "".join(text), Usage(prompt, completion, cached), error=error)

    async def abort(self, request_id: str) -> None:
        call = self._calls.get(request_id)
        if call is not None and not call.aborted:
            call.aborted = True
            if call.stream is not None:
                await call.stream.close()  # the server sees the disconnect and frees the request

    # --- scoring -------------------------------------------------------------------------------
    async def score(self, prompt: str, continuations: list[str]) -> list[float]:
        """Echo prompt + continuation with logprobs and sum the continuation's tokens."""
        import openai

        await self.start()
        if self.tokenizer is not None:
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            conts = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
            if any(not c for c in conts):
                raise ValueError("every continuation must encode to at least one token")
            inputs = [prompt_ids + c for c in conts]
        else:
            inputs = [prompt + c for c in continuations]
        try:
            response = await self._started().completions.create(
                model=self.model_name, prompt=inputs, echo=True, logprobs=1, max_tokens=1, temperature=0.0
            )
        except openai.APIError as exc:
            raise EngineError(
                f"{self.base_url} cannot score: score() needs /v1/completions with echo=True "
                f"and logprobs (vLLM servers support it): {_server_message(exc)}"
            ) from exc
        choices = sorted(response.choices, key=lambda c: c.index)
        echoed = [(c.logprobs, c.logprobs.token_logprobs) for c in choices if c.logprobs and c.logprobs.token_logprobs]
        if len(choices) != len(inputs) or len(echoed) != len(choices):
            raise EngineError(
                f"{self.base_url} did not return prompt logprobs for echo=True; score() "
                "needs a server that echoes the prompt with logprobs (vLLM does)"
            )
        if self.tokenizer is not None:
            return [
                _sum_token_span(token_logprobs, len(prompt_ids), len(cont))
                for (_, token_logprobs), cont in zip(echoed, conts)
            ]
        return [
            _sum_text_span(logprobs, len(prompt), len(prompt + cont))
            for (logprobs, _), cont in zip(echoed, continuations)
        ]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._embedder.encode, texts)

    def stats(self) -> EngineStats:
        c = self._counters
        return EngineStats(
            backend=self.backend,
            model=self.model_name,
            running=len(self._calls),
            tokens_per_s=c.tokens_per_s(),
            generated_tokens=c.generated,
            prompt_tokens=c.prompt,
            cached_tokens=c.cached,
            prefix_hit_rate=c.prefix_hit_rate(),
            prefix_hit_rate_by_app=c.prefix_hit_rate_by_app(),
        )


def _with_images(messages: list[dict], images: list[str]) -> list[dict]:
    """The messages with the pictures as image parts of the last user message (OpenAI content parts)."""
    if not images:
        return messages
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        raise EngineError("images go with a user message; the request has none")
    message = messages[last_user]
    content = message.get("content")
    parts = list(content) if isinstance(content, list) else [{"type": "text", "text": content or ""}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return [*messages[:last_user], {**message, "content": parts}, *messages[last_user + 1 :]]


def _generates(model) -> bool:
    """A listed model that writes text: Vireo marks its embedding model's `capabilities`; other servers'
    models carry no such field and are taken to generate."""
    capabilities = getattr(model, "capabilities", None)
    return not isinstance(capabilities, list) or "completions" in capabilities


def _with_v1(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _local_tokenizer(config: EngineConfig):
    """The served model's tokenizer when its name resolves in the local registry, else None."""
    from vireo.inference.registry import ModelRegistry

    names = [config.openai_model or config.model]
    if config.openai_model and config.model not in names:
        names.append(config.model)  # an explicit pairing: remote name -> local registry name
    for name in names:
        try:
            path = ModelRegistry(config.home).resolve(name).path
            from vireo.inference.prompt_text import load_tokenizer

            return load_tokenizer(path)
        except Exception:  # not a local model: fall back to labelled approximations
            continue
    return None


def _structured_outputs(constraint: Constraint | None) -> dict | None:
    if constraint is None:
        return None
    if constraint.choices is not None:
        return {"choice": list(constraint.choices)}
    if constraint.regex is not None:
        return {"regex": constraint.regex}
    if constraint.json_schema is not None:
        return {"json": constraint.json_schema}
    return None


def _chunk_text(choice, chat: bool) -> tuple[str, list[float] | None]:
    """The new text of a streamed choice and the logprobs of its tokens, if sent."""
    if chat:
        piece = choice.delta.content or "" if choice.delta else ""
        content = choice.logprobs.content if choice.logprobs and choice.logprobs.content else None
        return piece, [t.logprob for t in content] if content else None
    logprobs = choice.logprobs.token_logprobs if choice.logprobs else None
    return choice.text or "", list(logprobs) if logprobs else None


def _cached_tokens(usage) -> int:
    details = getattr(usage, "prompt_tokens_details", None) if usage else None
    return getattr(details, "cached_tokens", 0) or 0


def _sum_token_span(token_logprobs: list, start: int, length: int) -> float:
    return float(sum(token_logprobs[start : start + length]))


def _sum_text_span(logprobs, start: int, end: int) -> float:
    """Sum the logprobs of tokens that start inside [start, end) of the echoed text."""
    return float(
        sum(
            lp
            for lp, offset in zip(logprobs.token_logprobs, logprobs.text_offset)
            if lp is not None and start <= offset < end
        )
    )


def _server_message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(exc)
