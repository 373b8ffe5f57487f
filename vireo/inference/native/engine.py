"""The native engine: a background thread runs schedule -> model -> sample steps for all requests.

`generate()` submits a `Sequence` and awaits events the step thread hands over with
`loop.call_soon_threadsafe`. Aborts (explicit, or by closing the stream) are applied at the start
of the next step, which frees the request's KV blocks.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import torch

from vireo.inference.api import (EngineError, EngineEvent, EngineStats, Finished, GenerationRequest,
                                 TokenDelta, Usage)
from vireo.inference.local import EngineConfig, LocalEngine, torch_dtype
from vireo.inference.native.block_manager import BlockManager
from vireo.inference.native.constraints import ConstrainedDecoding, GrammarMatcher
from vireo.inference.native.model_runner import ModelRunner
from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.native.overlap import (Flight, ahead_input_ids, ahead_items, launch,
                                            may_overlap)
from vireo.inference.native.prefix_cache import PrefixCache
from vireo.inference.native.sampler import sample_rows, token_logprobs
from vireo.inference.native.scheduler import Scheduler
from vireo.inference.native.sequence import Sequence
from vireo.inference.native.speculative import Speculator
from vireo.inference.textstream import OutputStream

log = logging.getLogger(__name__)
MAX_TOKENS_PER_STEP = 512  # chunked-prefill budget: bounds how long decodes wait behind a prompt


@dataclass(eq=False)
class _Request:
    """A sequence plus the channel back to its caller's event loop."""

    seq: Sequence
    stream: OutputStream
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue

    def send(self, event: EngineEvent) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class NativeEngine(LocalEngine):
    """Paged-KV continuous-batching engine for Llama/Qwen2 models in plain torch."""

    backend = "native"

    def __init__(self, config: EngineConfig, model_path: Path, model_name: str,
                 model: LlamaModel | None = None, **kw):
        super().__init__(config, model_path, model_name, **kw)
        # `model` lets engines with different settings share one set of weights (tests, tools).
        self.model = model or LlamaModel.from_pretrained(model_path, torch_dtype(config.dtype),
                                                         config.max_batch, config.device)
        num_blocks = max(1, config.kv_cache_tokens // config.block_size)
        self.blocks = BlockManager(num_blocks, config.block_size,
                                   PrefixCache() if config.prefix_caching else None)
        self.runner = ModelRunner(self.model, num_blocks, config.block_size, config.device,
                                  config.cuda_graphs, config.max_batch, self.context_length)
        self.scheduler = Scheduler(self.blocks, config.max_batch, MAX_TOKENS_PER_STEP)
        self.speculator = Speculator(config, self.blocks, self._draft_path(), (model_path, self.model))
        self.constraints = ConstrainedDecoding(self.tokenizer, self.model.shape.vocab, self.eos_token_ids)
        self._requests: dict[str, _Request] = {}
        self._flight: Flight | None = None  # a decode step launched, its tokens not yet landed
        self.steps_run_ahead = 0  # decode steps queued before the previous one's tokens landed
        overlap = config.overlap_decode
        self._overlap = self.runner.device.type == "cuda" if overlap is None else overlap
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._counts = {"generated": 0, "prompt": 0, "cached": 0}
        self._recent: deque[tuple[float, int]] = deque()  # (time, tokens) for tokens/s
        self._thread = threading.Thread(target=self._serve, name="native-engine", daemon=True)
        self._thread.start()

    def _draft_path(self) -> Path | None:
        if not self.config.draft_model:
            return None
        from vireo.inference.registry import ModelRegistry

        return ModelRegistry(self.config.home).resolve(self.config.draft_model).path

    # --- Engine API ---------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        prompt_ids = self.prompt_ids(request)  # raises PromptTooLongError before any work
        needed = len(prompt_ids) + request.sampling.max_tokens
        if needed > self.blocks.num_blocks * self.blocks.block_size:
            raise EngineError(f"request needs {needed} KV slots; the cache holds "
                              f"{self.blocks.num_blocks * self.blocks.block_size}")
        grammar = await self._grammar_for(request)
        # Guesses are verified against the model, not the grammar: constrained requests never speculate.
        speculation = "off" if grammar else self.speculator.mode_for(request.speculation)
        seq = Sequence(request.request_id, prompt_ids, request.sampling, request.priority,
                       request.app, self._use_prefix_cache(request), speculation, grammar=grammar)
        req = _Request(seq, OutputStream(self.tokenizer, request.sampling.stop),
                       asyncio.get_running_loop(), asyncio.Queue())
        self._inbox.put(("add", req))
        self._wake.set()
        try:
            while True:
                event = await req.events.get()
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            if not seq.is_finished:  # the caller stopped listening: abort at the next step
                self._inbox.put(("abort", request.request_id))
                self._wake.set()

    async def _grammar_for(self, request: GenerationRequest) -> GrammarMatcher | None:
        """The request's grammar matcher (compiled off the event loop); InvalidConstraintError if bad."""
        if request.constraint is None:
            return None
        return await asyncio.to_thread(self.constraints.matcher_for, request.constraint)

    def _use_prefix_cache(self, request: GenerationRequest) -> bool:
        return self.config.prefix_caching and request.prefix_cache is not False

    async def abort(self, request_id: str) -> None:
        self._inbox.put(("abort", request_id))
        self._wake.set()

    async def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        await asyncio.to_thread(self._thread.join, 5)

    def forward_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.runner.forward_logits(input_ids)

    def stats(self) -> EngineStats:
        cache = self.blocks.cache
        proposed, accepted = self.speculator.proposed, self.speculator.accepted
        return EngineStats(
            backend=self.backend, model=self.model_name, running=len(self.scheduler.running),
            waiting=len(self.scheduler.waiting), kv_blocks_used=self.blocks.num_used,
            kv_blocks_total=self.blocks.num_blocks,
            kv_blocks_evictable=len(cache.evictable) if cache else 0,
            tokens_per_s=self._tokens_per_s(), generated_tokens=self._counts["generated"],
            prompt_tokens=self._counts["prompt"], cached_tokens=self._counts["cached"],
            prefix_hit_rate=cache.overall.rate if cache else 0.0,
            prefix_hit_rate_by_app=cache.hit_rates_by_app() if cache else {},
            spec_proposed=proposed, spec_accepted=accepted,
            spec_acceptance=accepted / proposed if proposed else 0.0)

    def _tokens_per_s(self, window: float = 10.0) -> float:
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._recent) if now - t <= window]
        if not recent:
            return 0.0
        span = max(now - recent[0][0], 1e-3)
        return sum(n for _, n in recent) / span

    # --- the step thread ----------------------------------------------------------------------
    def _serve(self) -> None:
        if self.config.threads:  # OpenMP thread counts are per thread: set it here too
            torch.set_num_threads(self.config.threads)
        with torch.inference_mode():
            while not self._stop.is_set():
                self._drain_inbox()
                if not self.scheduler.has_work and self._flight is None:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                try:
                    self._step()
                except Exception as exc:  # a failed step fails its requests, never hangs them
                    log.exception("native engine step failed")
                    self._fail_all(f"{type(exc).__name__}: {exc}")

    def _drain_inbox(self) -> None:
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "add":
                self._requests[payload.seq.request_id] = payload
                self.scheduler.add(payload.seq)
            elif (req := self._requests.get(payload)) is not None:
                self._finish(req, "abort")

    def _step(self) -> None:
        if self._flight is not None:
            self._advance_flight()
            return
        batch = self.scheduler.schedule()
        if not batch.items:
            return
        if self._overlaps(batch):
            self._prepare_cache()
            self._flight = launch(self.runner, batch.items)
            return
        started = time.perf_counter()
        self.speculator.attach_drafts(batch)
        self._prepare_cache()
        inputs, logits = self.runner.run(batch.items)
        plain = [(item, rows) for item, rows in zip(inputs.order, inputs.logit_rows) if rows]
        offset, new_tokens = 0, {}
        for item, rows in plain:
            item.seq.num_computed_tokens += item.num_tokens
            if item.draft:
                new_tokens[id(item)] = self.speculator.verify(item, logits[offset:offset + len(rows)])
            offset += len(rows)
        self._sample_plain(plain, logits, new_tokens)
        for item, rows in zip(inputs.order, inputs.logit_rows):
            if not rows:
                item.seq.num_computed_tokens += item.num_tokens
            self.blocks.commit(item.seq)
            if rows:
                self._append(self._requests[item.seq.request_id], *new_tokens[id(item)])
        if all(item.num_tokens == 1 for item in batch.items):  # decode steps teach the speculator
            emitted = sum(len(new_tokens[id(item)][0]) for item in batch.items if id(item) in new_tokens)
            self.speculator.observe_step(batch, emitted, time.perf_counter() - started)

    def _prepare_cache(self) -> None:
        """Zero blocks handed out for the first time; run pending copy-on-write copies."""
        self.runner.zero_new_blocks(self.blocks.high_water)
        self.runner.copy_blocks(self.blocks.take_pending_copies())

    # --- overlapped decoding (overlap.py) -----------------------------------------------------
    def _overlaps(self, batch) -> bool:
        """A pure decode batch whose tokens can all be picked on the device."""
        return self._overlap and all(item.num_tokens == 1 and item.samples and may_overlap(item.seq)
                                     for item in batch.items)

    def _advance_flight(self) -> None:
        """Queue the next decode step behind the one in flight (when nothing else needs the
        scheduler), then land the one in flight while the GPU computes."""
        flight, self._flight = self._flight, None
        if not self.scheduler.waiting:
            items = ahead_items(flight, self.context_length)
            if items and all(self.blocks.allocate(i.seq, len(i.seq) + 1) for i in items):
                self._prepare_cache()
                self._flight = launch(self.runner, items, ahead_input_ids(flight, items))
                self.steps_run_ahead += 1
        self._land(flight)

    def _land(self, flight: Flight) -> None:
        """Append a finished flight's tokens to the sequences it did not outlive."""
        for item, token in zip(flight.items, flight.wait()):
            seq = item.seq
            if seq.is_finished:  # finished or aborted after the launch: the token is dropped
                continue
            seq.num_computed_tokens += item.num_tokens
            self.blocks.commit(seq)
            self._append(self._requests[seq.request_id], [token], None)

    def _sample_plain(self, plain, logits, new_tokens) -> None:
        """One argmax over every non-speculative row (and a draw for each sampled one)."""
        index, rows, seqs = [], [], []
        offset = 0
        for item, item_rows in plain:
            if not item.draft:
                index.append(id(item))
                rows.append(offset)
                seqs.append(item.seq)
            offset += len(item_rows)
        if not rows:
            return
        picked = logits if len(rows) == logits.shape[0] else logits[torch.tensor(rows)]
        allowed = self.constraints.mask(picked, [s.grammar for s in seqs])
        tokens = sample_rows(allowed, [s.sampling for s in seqs], [s.generator for s in seqs])
        want = [i for i, s in enumerate(seqs) if s.sampling.logprobs]
        logprobs = dict(zip(want, token_logprobs(picked[want], [tokens[i] for i in want]))) if want else {}
        for i, key in enumerate(index):
            new_tokens[key] = ([tokens[i]], [logprobs[i]] if i in logprobs else None)

    # --- outputs ------------------------------------------------------------------------------
    def _append(self, req: _Request, tokens: list[int], logprobs: list[float] | None) -> None:
        """Extend the sequence with accepted tokens, stream their text, finish when done."""
        seq, sampling = req.seq, req.seq.sampling
        shown, text, reason = [], "", None
        for count, token in enumerate(tokens, 1):
            seq.token_ids.append(token)
            if token in self.eos_token_ids and not sampling.ignore_eos:
                reason = "stop"
                break
            shown.append(token)
            text += req.stream.push([token])
            if req.stream.stopped or self._grammar_complete(seq, token):
                reason = "stop"
            elif seq.num_completion_tokens >= sampling.max_tokens or len(seq) >= self.context_length:
                reason = "length"
            if reason:
                break
        self._count_generated(count)
        if shown:
            req.send(TokenDelta(seq.request_id, text, shown,
                                logprobs[:len(shown)] if logprobs is not None else None))
        if reason:
            self._finish(req, reason)

    @staticmethod
    def _grammar_complete(seq: Sequence, token: int) -> bool:
        """Advance a constrained sequence's grammar; True once the output is whole."""
        if seq.grammar is None:
            return False
        seq.grammar.advance(token)
        return seq.grammar.is_complete

    def _count_generated(self, n: int) -> None:
        self._counts["generated"] += n
        self._recent.append((time.monotonic(), n))
        while len(self._recent) > 4096:
            self._recent.popleft()

    def _finish(self, req: _Request, reason: str, error: str | None = None) -> None:
        seq = req.seq
        if seq.is_finished:
            return
        self.scheduler.finish(seq, reason)
        self.speculator.release(seq)
        self._requests.pop(seq.request_id, None)
        tail = req.stream.finish() if reason != "abort" else ""
        if tail:
            req.send(TokenDelta(seq.request_id, tail, []))
        self._counts["prompt"] += seq.num_prompt_tokens
        self._counts["cached"] += seq.num_cached_tokens
        usage = Usage(seq.num_prompt_tokens, seq.num_completion_tokens, seq.num_cached_tokens)
        req.send(Finished(seq.request_id, reason, req.stream.text, usage, error=error))

    def _fail_all(self, error: str) -> None:
        self._flight = None
        for req in list(self._requests.values()):
            self._finish(req, "error", error)
