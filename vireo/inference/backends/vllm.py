"""The `vllm` backend: vLLM's `AsyncLLM` driven from this process.

vLLM schedules, pages the KV cache, caches prefixes, speculates, detokenizes and matches stop
strings; this file maps Vireo's requests and `EngineConfig` onto vLLM's and streams vLLM's delta
outputs back as `TokenDelta` / `Finished` events. vLLM runs its engine core in child processes
(started with `spawn` on CPU), so a program that builds this engine needs the usual
`if __name__ == "__main__":` guard in its main module.
"""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator

from vireo.inference.api import (
    Constraint,
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
from vireo.inference.local import EngineConfig, LocalEngine
from vireo.inference.registry import ModelRegistry

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

DEFAULT_MAX_MODEL_LEN = 4096  # vLLM sizes its scheduler budget by this; 8k is rarely needed on CPU
PROMPT_LOOKUP_MAX = 4
PROMPT_LOOKUP_MIN = 2


def prepare_vllm_environment() -> None:
    """vLLM reads these once, at import time, so they must be set before the first import."""
    # vLLM-CPU otherwise sizes its KV cache from free memory, far beyond what one small model needs.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")  # no phoning home from an offline machine
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


class _SchedulerSnapshot:
    """A vLLM stat logger that keeps the latest scheduler numbers and the running spec totals."""

    def __init__(self) -> None:
        self.waiting = 0
        self.kv_usage = 0.0
        self.spec_drafted = 0
        self.spec_accepted = 0

    def factory(self, vllm_config, engine_index: int = 0):
        from vllm.v1.metrics.loggers import StatLoggerBase

        snapshot = self

        class _Logger(StatLoggerBase):
            def __init__(self, *args, **kwargs):
                pass

            def record(self, scheduler_stats, iteration_stats, mm_cache_stats=None, engine_idx=0):
                if scheduler_stats is not None:
                    snapshot.update(scheduler_stats)

            def log_engine_initialized(self):
                pass

        return _Logger()

    def update(self, stats) -> None:
        self.waiting = stats.num_waiting_reqs + stats.num_skipped_waiting_reqs
        self.kv_usage = stats.kv_cache_usage
        spec = stats.spec_decoding_stats
        if spec is not None:
            self.spec_drafted += spec.num_draft_tokens
            self.spec_accepted += spec.num_accepted_tokens


class VLLMEngine(LocalEngine):
    """One model in vLLM; chat rendering and the prompt-length check come from `LocalEngine`."""

    backend = "vllm"

    def __init__(self, config: EngineConfig, model_path: Path, model_name: str, **kw):
        super().__init__(config, model_path, model_name, **kw)
        self.context_length = min(self.context_length, config.max_model_len or DEFAULT_MAX_MODEL_LEN)
        self._engine: AsyncLLM | None = None
        self._start_lock = asyncio.Lock()
        self._snapshot = _SchedulerSnapshot()
        self._counters = TokenCounters()
        self._active: set[str] = set()

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._start_lock:
            if self._engine is None:
                # Building blocks for tens of seconds (it spawns and warms the core), so it runs in a
                # thread; the result goes through a box so no executor future keeps the engine alive.
                box: dict = {}
                await asyncio.to_thread(lambda: box.update(engine=self._build_engine()))
                self._engine = box.pop("engine")

    def _started(self) -> AsyncLLM:
        """The engine `start()` built."""
        assert self._engine is not None, "the vllm engine is not started"
        return self._engine

    def _build_engine(self) -> AsyncLLM:
        prepare_vllm_environment()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(**self.engine_arguments())
        return AsyncLLM.from_engine_args(args, stat_loggers=[self._snapshot.factory])

    def engine_arguments(self) -> dict:
        """The vLLM engine arguments this config maps to."""
        config = self.config
        return dict(
            model=str(self.model_path),
            served_model_name=self.model_name,
            dtype=config.dtype,
            max_model_len=self.context_length,
            max_num_seqs=config.max_batch,
            enforce_eager=True,
            enable_prefix_caching=config.prefix_caching,
            scheduling_policy="priority",
            speculative_config=self.speculative_config(),
            disable_log_stats=True,
            seed=0,
        )

    def speculative_config(self) -> dict | None:
        """vLLM speculation is engine-wide, so a per-app choice ("auto") runs without it."""
        method = self.config.speculation
        n = self.config.num_speculative_tokens
        if method == "prompt_lookup":
            return {
                "method": "ngram",
                "num_speculative_tokens": n,
                "prompt_lookup_max": PROMPT_LOOKUP_MAX,
                "prompt_lookup_min": PROMPT_LOOKUP_MIN,
            }
        if method == "draft":
            if not self.config.draft_model:
                raise EngineError("speculation 'draft' needs EngineConfig.draft_model (a registry name)")
            draft = ModelRegistry(self.config.home).resolve(self.config.draft_model)
            return {"model": str(draft.path), "num_speculative_tokens": n}
        return None

    async def shutdown(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.shutdown)
            del engine
            gc.collect()  # AsyncLLM.__del__ shuts down again; let it run now, not at interpreter exit

    # --- generation ----------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        prompt_ids = self.prompt_ids(request)  # refuses an over-long prompt before any work
        await self.start()
        rid = request.request_id
        stream = self._started().generate(
            self._engine_input(prompt_ids), self.sampling_params(request), rid, priority=request.priority
        )
        self._active.add(rid)
        text, completion, final = [], 0, None
        try:
            async for out in stream:
                piece = out.outputs[0]
                ids = list(piece.token_ids)
                completion += len(ids)
                self._counters.add_generated(len(ids))
                if piece.text or ids:
                    text.append(piece.text)
                    yield TokenDelta(rid, piece.text, ids, _sampled_logprobs(piece, ids))
                if out.finished:
                    cached = out.num_cached_tokens or 0
                    self._counters.add_prompt(request.app, len(prompt_ids), cached)
                    final = Finished(
                        rid,
                        _finish_reason(piece.finish_reason),
                        "".join(text),
                        Usage(len(prompt_ids), completion, cached),
                    )
        except Exception as exc:  # surface to the caller as an event, like the other backends
            cause = exc.__cause__ or exc
            final = Finished(
                rid,
                "error",
                "".join(text),
                Usage(len(prompt_ids), completion),
                error=f"{type(cause).__name__}: {cause}",
            )
        finally:
            self._active.discard(rid)
            if final is None:
                await stream.aclose()  # vLLM aborts a request whose stream is closed early
        yield final or Finished(rid, "abort", "".join(text), Usage(len(prompt_ids), completion))

    def _engine_input(self, prompt_ids: list[int]):
        from vllm.inputs import TokensPrompt

        return self._started().renderer.render_cmpl([TokensPrompt(prompt_token_ids=prompt_ids)])[0]

    def sampling_params(self, request: GenerationRequest):
        """vLLM's SamplingParams for `request`, streaming deltas."""
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        s = request.sampling
        return VSamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k or 0,
            max_tokens=s.max_tokens,
            stop=list(s.stop) or None,
            seed=s.seed,
            logprobs=0 if s.logprobs else None,
            ignore_eos=s.ignore_eos,
            output_kind=RequestOutputKind.DELTA,
            structured_outputs=_structured_outputs(request.constraint),
            skip_reading_prefix_cache=True if request.prefix_cache is False else None,
        )

    async def abort(self, request_id: str) -> None:
        if self._engine is not None and request_id in self._active:
            await self._engine.abort(request_id)

    # --- scoring: prompt logprobs of prompt + continuation, all continuations in one batch -----
    async def score(self, prompt: str, continuations: list[str]) -> list[float]:
        prompt_ids = self.encode(prompt)
        conts = [self.encode(c) for c in continuations]
        if any(not c for c in conts):
            raise ValueError("every continuation must encode to at least one token")
        longest = max(len(prompt_ids) + len(c) for c in conts)
        if longest >= self.context_length:
            raise PromptTooLongError(longest, 1, self.context_length)
        await self.start()
        return list(await asyncio.gather(*(self._score_one(prompt_ids, c) for c in conts)))

    async def _score_one(self, prompt_ids: list[int], cont: list[int]) -> float:
        from vllm import SamplingParams as VSamplingParams

        # prompt_logprobs=0 returns the logprob of each actual prompt token (no alternatives).
        params = VSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, skip_reading_prefix_cache=True)
        final = None
        async for out in self._started().generate(
            self._engine_input(prompt_ids + cont), params, f"score-{uuid.uuid4().hex}"
        ):
            final = out
        assert final is not None and final.prompt_logprobs is not None  # asked for: prompt_logprobs=0
        positions = range(len(prompt_ids), len(prompt_ids) + len(cont))
        total = 0.0
        for i, tok in zip(positions, cont):
            logprobs = final.prompt_logprobs[i]
            assert logprobs is not None  # only the first prompt token has none
            total += logprobs[tok].logprob
        return total

    # --- statistics ----------------------------------------------------------------------------
    def stats(self) -> EngineStats:
        active = len(self._active)
        waiting = min(self._snapshot.waiting, active)
        total_blocks = self._total_kv_blocks()
        c, snap = self._counters, self._snapshot
        return EngineStats(
            backend=self.backend,
            model=self.model_name,
            running=active - waiting,
            waiting=waiting,
            kv_blocks_used=round(snap.kv_usage * total_blocks) if active else 0,
            kv_blocks_total=total_blocks,
            tokens_per_s=c.tokens_per_s(),
            generated_tokens=c.generated,
            prompt_tokens=c.prompt,
            cached_tokens=c.cached,
            prefix_hit_rate=c.prefix_hit_rate(),
            prefix_hit_rate_by_app=c.prefix_hit_rate_by_app(),
            spec_proposed=snap.spec_drafted,
            spec_accepted=snap.spec_accepted,
            spec_acceptance=snap.spec_accepted / snap.spec_drafted if snap.spec_drafted else 0.0,
        )

    def _total_kv_blocks(self) -> int:
        if self._engine is None:
            return 0
        return self._engine.vllm_config.cache_config.num_gpu_blocks or 0


def _structured_outputs(constraint: Constraint | None):
    if constraint is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if constraint.choices is not None:
        return StructuredOutputsParams(choice=list(constraint.choices))
    if constraint.regex is not None:
        return StructuredOutputsParams(regex=constraint.regex)
    if constraint.json_schema is not None:
        return StructuredOutputsParams(json=constraint.json_schema)
    return None


def _sampled_logprobs(piece, ids: list[int]) -> list[float] | None:
    if not piece.logprobs:
        return None
    return [float(entry[tok].logprob) for entry, tok in zip(piece.logprobs, ids)]


_FINISH_REASONS: dict[str | None, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "abort": "abort",
    "error": "error",
}


def _finish_reason(reason: str | None) -> FinishReason:
    # vLLM also reports "repetition" (its repetition detector), which is a stop like EOS.
    return _FINISH_REASONS.get(reason, "stop")
