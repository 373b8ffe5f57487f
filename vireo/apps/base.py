"""The app contract: a named class with pydantic `Input`/`Output` models and `run(ctx, input)`.

Apps see only the engine API and their `AppContext`; never Celery, Redis or FastAPI. That keeps an
app testable with an engine and no broker (see `LocalContext`).
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from vireo.inference.api import (
    Engine,
    EngineEvent,
    Finished,
    GenerationRequest,
    RequestTimes,
    SamplingParams,
    TokenDelta,
)

if TYPE_CHECKING:
    from fastapi import APIRouter


class AppInputError(ValueError):
    """Input that passed the schema but cannot be served (too long, unknown language, ...).

    The platform turns it into a 4xx-style failed job with this message."""


class JobCancelled(Exception):
    """Raised inside an app when its job was cancelled."""


class JobsUnavailable(AppInputError):
    """Asked for other jobs where there is no job store (an in-process run)."""


@dataclass(frozen=True)
class FinishedJob:
    """Another job of the same tenant, as an app may read it: its app, input and result."""

    id: str
    app: str
    input: dict
    result: dict


@dataclass
class TechniquePreferences:
    """What an app benefits from; the engine applies it unless settings override."""

    speculation: str | None = None  # "prompt_lookup" when outputs copy from the input
    prefix_cache: bool = True


class AppContext(abc.ABC):
    """What a running app may use: the engine, progress, token streaming, cancellation."""

    engine: Engine
    job_id: str
    app_name: str
    options: dict  # the job's generation overrides (temperature, top_p, max_tokens, seed, ...)
    preferences: TechniquePreferences | None = None
    tenant: str = "default"  # the job's tenant (apps with per-tenant data, e.g. RAG collections)

    def sampling(self, **defaults) -> SamplingParams:
        """The app's default sampling parameters with the job's overrides applied."""
        merged = {
            **defaults,
            **{
                k: v
                for k, v in (self.options or {}).items()
                if k in SamplingParams.__dataclass_fields__ and v is not None
            },
        }
        return SamplingParams(**merged)

    @abc.abstractmethod
    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1] with a short human message."""

    @abc.abstractmethod
    def emit(self, text: str, index: int = 0) -> None:
        """Stream a piece of output text to the client; `index` names the choice when a job
        samples several answers to one input (token events carry it when it is not 0)."""

    def emit_tool_call(
        self, index: int, call: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        """Stream part of a tool call: its `id` and `name` first, then pieces of its JSON `arguments`.

        `call` numbers the calls of choice `index`. Contexts without a client may ignore it."""

    @abc.abstractmethod
    def cancelled(self) -> bool:
        """True once the job has been cancelled."""

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise JobCancelled(self.job_id)

    def record_usage(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> None:
        """Add token counts to the job's totals (the platform stores them)."""

    async def finished_job(self, job_id: str) -> FinishedJob:
        """A succeeded job of this tenant (the judge grades jobs by id); AppInputError otherwise."""
        raise JobsUnavailable(
            "job ids can only be read inside the platform (a job's worker); "
            "this in-process run has no job store: pass the items instead"
        )

    def first_token(self) -> None:
        """Called once when the first generated token arrives (for TTFT timings)."""

    def engine_times(self, times: RequestTimes) -> None:
        """Called with the engine's times of each generation that has them (the job's first one is its TTFT's)."""

    async def stream(
        self,
        request: GenerationRequest,
        emit: bool = True,
        index: int = 0,
        on_text: Callable[[str], bool | None] | None = None,
        on_token_ids: Callable[[list[int]], None] | None = None,
    ) -> Finished:
        """Generate, streaming deltas to the client (as choice `index`); aborts in the engine on cancel.

        `on_text`, when given, receives the text instead of the client; it returns True to stop the
        generation there (the engine aborts it and its Finished event says "abort"). `on_token_ids`
        receives the ids of the tokens written, in order (where the engine reports them).
        """
        request.app = request.app or self.app_name
        if request.speculation is None and self.preferences is not None:
            request.speculation = self.preferences.speculation
        if request.prefix_cache is None and self.preferences is not None:
            request.prefix_cache = self.preferences.prefix_cache
        final: Finished | None = None
        generated, stopping = 0, False
        events: AsyncIterator[EngineEvent] = self.engine.generate(request)
        try:
            async for event in events:
                if self.cancelled():
                    await self.engine.abort(request.request_id)
                    raise JobCancelled(self.job_id)
                if isinstance(event, TokenDelta):
                    if not generated:
                        self.first_token()
                    generated += max(1, len(event.token_ids))
                    if on_token_ids is not None and not stopping:
                        on_token_ids(event.token_ids)
                    if not event.text or stopping:  # after a stop: the engine winding down
                        continue
                    if on_text is None:
                        if emit:
                            self.emit(event.text, index)
                    elif on_text(event.text):
                        stopping = True
                        await self.engine.abort(request.request_id)
                else:
                    final = event
        finally:
            if final is None:
                await self.engine.abort(request.request_id)
                self._record_partial_usage(request, generated)
            await events.aclose()  # type: ignore[attr-defined]
        if final is None:  # the engine's stream ended without its Finished event
            raise RuntimeError("the engine ended the generation without a finished event")
        self.record_usage(final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.cached_tokens)
        if final.times is not None:
            self.engine_times(final.times)
        if final.finish_reason == "error":
            raise RuntimeError(final.error or "generation failed")
        return final

    def _record_partial_usage(self, request: GenerationRequest, generated: int) -> None:
        """A cancelled or failed generation still used the prompt and the tokens made so far."""
        try:
            prompt_tokens = self.engine.count_tokens(self.engine.render(request))
        except Exception:  # an engine without a local tokenizer: count what is known
            prompt_tokens = 0
        self.record_usage(prompt_tokens, generated)


InputT = TypeVar("InputT", bound=BaseModel)


@dataclass(frozen=True)
class RouteDeps:
    """What the platform lends an app's own REST routes (apps sit below the platform and import nothing
    of it): FastAPI dependencies for the caller's tenant and for the per-key rate limit, and the
    platform's documentation of error replies for `responses=`."""

    tenant: Callable[..., Any]  # Depends(deps.tenant) → the authenticated caller's tenant (401 otherwise)
    rate_limited: Callable[..., Any]  # dependencies=[Depends(deps.rate_limited)] on routes that write
    error_responses: Callable[..., dict]  # error_responses(404, 409) → `responses=` in the platform's shape


class App(abc.ABC, Generic[InputT]):
    """Subclass, set `name`, `title`, `description`, `Input`, `Output`, implement `run`.

    Subclass `App[MyInput]`: `run` and `validate_for_engine` then take `MyInput` (the `Input` model)."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    preferences: ClassVar[TechniquePreferences] = TechniquePreferences()

    @abc.abstractmethod
    async def run(self, ctx: AppContext, input: InputT) -> BaseModel:
        """Do the work and return an `Output`."""

    def validate_for_engine(self, input: InputT, engine_context_length: int, count_tokens) -> None:
        """Raise AppInputError for input the model cannot serve. Override where it matters."""

    @classmethod
    def router(cls, deps: RouteDeps) -> APIRouter | None:
        """REST routes of the app's own beside the job API (the RAG app's collections), mounted by the API
        at start; None: the app has only its jobs. Paths should start with /v1/ and name the app's things."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "title": cls.title or cls.name,
            "description": cls.description,
            "input_schema": cls.Input.model_json_schema(),
            "output_schema": cls.Output.model_json_schema(),
            "preferences": {"speculation": cls.preferences.speculation, "prefix_cache": cls.preferences.prefix_cache},
        }


@dataclass
class LocalContext(AppContext):
    """A context for running an app in-process (tests, CLI evals): collects output in memory."""

    engine: Engine
    app_name: str = "local"
    job_id: str = "local"
    options: dict = field(default_factory=dict)
    preferences: TechniquePreferences | None = None
    tenant: str = "default"
    emitted: list[str] = field(default_factory=list)  # choice 0's text
    emitted_choices: dict[int, list[str]] = field(default_factory=dict)  # the other choices' text
    tool_call_deltas: list[dict] = field(default_factory=list)
    progress_log: list[tuple[float, str]] = field(default_factory=list)
    cancel_event: asyncio.Event | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0}
    )

    def progress(self, fraction: float, message: str = "") -> None:
        self.progress_log.append((fraction, message))

    def emit(self, text: str, index: int = 0) -> None:
        (self.emitted if index == 0 else self.emitted_choices.setdefault(index, [])).append(text)

    def emit_tool_call(
        self, index: int, call: int, *, id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        self.tool_call_deltas.append({"index": index, "call": call, "id": id, "name": name, "arguments": arguments})

    def cancelled(self) -> bool:
        return self.cancel_event is not None and self.cancel_event.is_set()

    def record_usage(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> None:
        self.usage["prompt_tokens"] += prompt_tokens
        self.usage["completion_tokens"] += completion_tokens
        self.usage["cached_tokens"] += cached_tokens
