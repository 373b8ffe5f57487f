"""The engine API every backend implements and every app sees.

An engine turns a `GenerationRequest` into an async stream of `TokenDelta` events closed by one
`Finished` event. It can abort a request, score continuations (one forward pass), give every token of
a sequence its log-probability (`sequence_logprobs`, the same pass), embed texts and report live
statistics. Backends differ in speed, never in this contract.
"""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator, Literal, Union

FinishReason = Literal["stop", "length", "abort", "error"]


class EngineError(Exception):
    """Base class for errors a caller can show to a person."""


class PromptTooLongError(EngineError):
    """The prompt (plus the requested new tokens) does not fit the model's context."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int):
        self.prompt_tokens, self.max_tokens, self.context_length = prompt_tokens, max_tokens, context_length
        super().__init__(
            f"prompt is {prompt_tokens} tokens and asks for {max_tokens} new tokens, "
            f"but the model's context holds {context_length} tokens in all; shorten the input"
        )

    def __reduce__(self):  # rebuilt from its fields (an engine in its own process raises it across the pipe)
        return type(self), (self.prompt_tokens, self.max_tokens, self.context_length)


class UnknownModelError(EngineError):
    """A model name that the registry cannot resolve."""

    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        super().__init__(
            f"unknown model {name!r}; known models: {', '.join(known)} "
            "(or a local HF folder, a .gguf file, or a hub id when a hub is reachable)"
        )

    def __reduce__(self):
        return type(self), (self.name, self.known)


class InvalidConstraintError(EngineError, ValueError):
    """A `Constraint` the engine cannot compile: a bad regex or JSON schema, no or several kinds."""


@dataclass
class SamplingParams:
    """How to pick tokens. temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass
class Constraint:
    """Restrict the output: one of `choices`, a `regex`, or a `json_schema` (where supported)."""

    choices: list[str] | None = None
    regex: str | None = None
    json_schema: dict | None = None


@dataclass
class GenerationRequest:
    """One generation: a raw `prompt`, its `prompt_token_ids` as given, or chat `messages` (rendered
    with the chat template)."""

    prompt: str | None = None
    messages: list[dict] | None = None
    tools: list[dict] | None = None  # OpenAI-style function tools, shown by chat templates that take them
    sampling: SamplingParams = field(default_factory=SamplingParams)
    constraint: Constraint | None = None
    priority: int = 0  # lower runs first
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    app: str | None = None  # for per-app metrics and the app's technique preferences
    speculation: str | None = None  # None = engine default, "off", "prompt_lookup", "draft"
    prefix_cache: bool | None = None  # None = engine default
    # pictures the last user message shows, as `data:image/...;base64,` URLs; only an engine whose
    # `accepts_images` is true takes them (the openai backend, for a vision-language model on its server)
    images: list[str] = field(default_factory=list)
    # another model of the engine's server (an OpenAI-compatible server may serve several); None: the
    # engine's own. An engine that serves one model refuses any other name.
    model: str | None = None
    prompt_token_ids: list[int] | None = None  # a prompt already tokenized (OpenAI's token-id prompts)

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.prompt, self.messages, self.prompt_token_ids)) != 1:
            raise ValueError("give exactly one of prompt, prompt_token_ids or messages")


@dataclass
class TokenDelta:
    """New text for one request, with the token ids behind it (and their logprobs if asked)."""

    request_id: str
    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass
class RequestTimes:
    """When, by the engine's clock (`time.time()`, one host's wall clock), a request reached the engine, when a step
    first ran its prompt, and when its first token left the engine: the engine's share of a job's time to first
    token, which the platform puts beside its own times (a job's `timings`)."""

    received_at: float
    scheduled_at: float | None = None  # None: never scheduled (aborted while waiting)
    first_token_at: float | None = None  # None: no token made


@dataclass
class Finished:
    """The last event of a request."""

    request_id: str
    finish_reason: FinishReason
    text: str
    usage: Usage
    error: str | None = None
    times: RequestTimes | None = None  # where the engine keeps them (the native engine)


EngineEvent = Union[TokenDelta, Finished]


@dataclass
class TokenLogprob:
    """One token of a scored sequence: its text (the token decoded alone), its log-probability given
    the tokens before it (None for the sequence's first token: nothing precedes it), and in `top` the
    most likely tokens at its position, most likely first (each with an empty `top`)."""

    token_id: int
    text: str
    logprob: float | None
    top: list[TokenLogprob] = field(default_factory=list)


@dataclass
class EngineStats:
    """Live numbers for dashboards and `/metrics`."""

    backend: str
    model: str
    running: int = 0
    waiting: int = 0
    kv_blocks_used: int = 0
    kv_blocks_total: int = 0
    kv_blocks_evictable: int = 0
    tokens_per_s: float = 0.0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    prefix_hit_rate: float = 0.0
    prefix_hit_rate_by_app: dict[str, float] = field(default_factory=dict)
    spec_proposed: int = 0
    spec_accepted: int = 0
    spec_acceptance: float = 0.0
    # native engine: steps run, by kind (stats.STEP_KINDS), and the step thread's seconds in each
    steps_by_kind: dict[str, int] = field(default_factory=dict)
    step_seconds_by_kind: dict[str, float] = field(default_factory=dict)
    # and how many steps of each kind took each time, by bucket (stats.STEP_MS_EDGES, the last bucket beyond them)
    step_ms_histogram_by_kind: dict[str, list[int]] = field(default_factory=dict)


class Engine(abc.ABC):
    """One model served by one backend. Safe to call from one asyncio event loop."""

    backend: str = "abstract"
    model_name: str = ""
    context_length: int = 0
    accepts_images: bool = False  # GenerationRequest.images reach the model (see refuse_unsupported_inputs)

    async def start(self) -> None:
        """Load weights and start background work. Idempotent."""

    async def shutdown(self) -> None:
        """Stop background work and release memory."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        """Stream events for `request`; closing the iterator early aborts the request."""

    @abc.abstractmethod
    async def abort(self, request_id: str) -> None:
        """Stop a request at its next step and free its resources; unknown ids are ignored."""

    @abc.abstractmethod
    async def score(self, prompt: str, continuations: list[str]) -> list[float]:
        """Sum of log-probabilities of each continuation after `prompt`."""

    async def sequence_logprobs(self, token_ids: list[int], top: int = 0, start: int = 0) -> list[TokenLogprob]:
        """Teacher forcing, one forward pass: each token of `token_ids` from position `start` on with its
        raw log-probability (the model's own distribution: no temperature, top-p or grammar) given the
        tokens before it, and the `top` most likely tokens at its position. Backends that cannot run
        the model over a given sequence refuse."""
        raise EngineError(
            f"the {self.backend} backend cannot give the log-probabilities of a token sequence; "
            "serve the model with the native or hf backend for echo and logprobs"
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (without special tokens), as generation tokenizes a raw prompt."""
        raise EngineError(f"the {self.backend} backend serving {self.model_name} has no tokenizer here")

    def decode(self, token_ids: list[int]) -> str:
        """The text of `token_ids` (special tokens shown)."""
        raise EngineError(f"the {self.backend} backend serving {self.model_name} has no tokenizer here")

    @abc.abstractmethod
    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Sentence embeddings (the packaged MiniLM)."""

    @abc.abstractmethod
    def stats(self) -> EngineStats:
        """A snapshot of the live statistics."""

    @abc.abstractmethod
    def render(self, request: GenerationRequest) -> str:
        """The prompt text the model will see (chat template applied to messages)."""

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Number of tokens `text` encodes to (without special tokens)."""

    async def complete(self, request: GenerationRequest) -> Finished:
        """Run `request` to the end and return its final event."""
        final: Finished | None = None
        async for event in self.generate(request):
            if isinstance(event, Finished):
                final = event
        assert final is not None, "engine stream ended without a Finished event"
        return final


def refuse_unsupported_inputs(engine: Engine, request: GenerationRequest) -> None:
    """An engine that takes no images, or serves one model, refuses a request for them before any work."""
    if request.images and not engine.accepts_images:
        raise EngineError(
            f"the {engine.backend} backend serving {engine.model_name} takes no images; serve a "
            "vision-language model through the openai backend (VIREO_ENGINE=openai) for pictures"
        )
    if request.model not in (None, engine.model_name):
        raise EngineError(f"this engine serves {engine.model_name} only, not {request.model}")
