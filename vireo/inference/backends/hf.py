"""The `hf` backend: plain transformers `generate`, the reference and the baseline.

A single generation thread serves requests in static batches (requests with the same sampling
parameters, left-padded, as a user of `generate` would batch them). Tokens stream out through a
custom streamer; aborts and stop strings end a row through a per-row stopping criterion.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import torch
from transformers.generation.streamers import BaseStreamer

from vireo.inference.api import (
    EngineError,
    EngineEvent,
    EngineStats,
    Finished,
    FinishReason,
    GenerationRequest,
    TokenDelta,
    Usage,
)
from vireo.inference.local import EngineConfig, LocalEngine, events_until_finished, torch_dtype
from vireo.inference.textstream import OutputStream


@dataclass
class _Job:
    request: GenerationRequest
    prompt_ids: list[int]
    events: asyncio.Queue
    loop: asyncio.AbstractEventLoop
    stream: OutputStream
    aborted: bool = False
    done: bool = False
    completion_ids: list[int] = field(default_factory=list)

    def send(self, event: EngineEvent) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class HFEngine(LocalEngine):
    backend = "hf"

    def __init__(self, config: EngineConfig, model_path: Path, model_name: str, **kw):
        super().__init__(config, model_path, model_name, **kw)
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(self.config.dtype))
        self.model.eval()
        self.tokenizer.padding_side = "left"
        self._pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else next(iter(self.eos_token_ids))
        )
        self._pending: queue.Queue[_Job] = queue.Queue()
        self._jobs: dict[str, _Job] = {}
        self._running = 0
        self._stats = {"generated": 0, "prompt": 0}
        self._thread = threading.Thread(target=self._serve, name="hf-generate", daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    # --- Engine API ----------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        if request.constraint is not None:
            raise EngineError(
                "the hf backend (plain transformers generate) cannot constrain output to "
                "choices, a regex or a JSON schema; serve with VIREO_ENGINE=native or vllm"
            )
        prompt_ids = self.prompt_ids(request)
        job = _Job(
            request,
            prompt_ids,
            asyncio.Queue(),
            asyncio.get_running_loop(),
            OutputStream(self.tokenizer, request.sampling.stop),
        )
        self._jobs[request.request_id] = job
        self._pending.put(job)
        try:
            async for event in events_until_finished(job.events):
                yield event
        finally:
            job.aborted = True  # closing the stream early aborts the request
            self._jobs.pop(request.request_id, None)

    async def abort(self, request_id: str) -> None:
        job = self._jobs.get(request_id)
        if job is not None:
            job.aborted = True

    def stats(self) -> EngineStats:
        return EngineStats(
            backend=self.backend,
            model=self.model_name,
            running=self._running,
            waiting=self._pending.qsize(),
            generated_tokens=self._stats["generated"],
            prompt_tokens=self._stats["prompt"],
        )

    async def shutdown(self) -> None:
        self._stop.set()

    def forward_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids).logits

    # --- generation thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        torch.set_grad_enabled(False)
        while not self._stop.is_set():
            try:
                first = self._pending.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first] + self._take_compatible(first)
            batch = [j for j in batch if not self._finish_if_aborted(j)]
            if batch:
                self._run_batch(batch)

    def _take_compatible(self, first: _Job) -> list[_Job]:
        """More waiting jobs with the same sampling parameters, up to the max batch."""
        taken: list[_Job] = []
        put_back: list[_Job] = []
        while len(taken) + 1 < self.config.max_batch:
            try:
                job = self._pending.get_nowait()
            except queue.Empty:
                break
            (taken if job.request.sampling == first.request.sampling else put_back).append(job)
        for job in put_back:
            self._pending.put(job)
        return taken

    def _finish_if_aborted(self, job: _Job) -> bool:
        if job.aborted:
            job.send(Finished(job.request.request_id, "abort", "", Usage(len(job.prompt_ids), 0)))
        return job.aborted

    def _run_batch(self, batch: list[_Job]) -> None:
        sampling = batch[0].request.sampling
        width = max(len(j.prompt_ids) for j in batch)
        ids = torch.tensor([[self._pad_id] * (width - len(j.prompt_ids)) + j.prompt_ids for j in batch])
        mask = torch.tensor([[0] * (width - len(j.prompt_ids)) + [1] * len(j.prompt_ids) for j in batch])
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        kwargs: dict[str, Any] = dict(
            do_sample=not sampling.greedy, max_new_tokens=sampling.max_tokens, pad_token_id=self._pad_id
        )
        if not sampling.greedy:
            kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k or None)
        if sampling.ignore_eos:
            kwargs.update(eos_token_id=None)  # benchmark workloads want exactly max_tokens
        from transformers import LogitsProcessorList, StoppingCriteriaList

        recorder = _LogprobRecorder() if sampling.logprobs else None
        self._running = len(batch)
        try:
            # transformers annotates from_pretrained as returning its `_BaseModelWithGenerate`, which
            # generate()'s own self type (GenerativePreTrainedModel) does not admit
            self.model.generate(  # type: ignore[misc]
                input_ids=ids,
                attention_mask=mask,
                streamer=_BatchStreamer(self, batch, recorder),
                stopping_criteria=StoppingCriteriaList([_RowStop(batch)]),
                logits_processor=LogitsProcessorList([recorder] if recorder else []),
                **kwargs,
            )
            error = None
        except Exception as exc:  # surface to every caller rather than hang them
            error = f"{type(exc).__name__}: {exc}"
        self._running = 0
        for job in batch:
            self._finish(job, error)

    def _finish(self, job: _Job, error: str | None) -> None:
        if job.done:
            return
        job.done = True
        tail = job.stream.finish()
        if tail:
            job.send(TokenDelta(job.request.request_id, tail, []))
        n = len(job.completion_ids)
        reason: FinishReason
        if error:
            reason = "error"
        elif job.aborted:
            reason = "abort"
        elif job.stream.stopped or (job.completion_ids and job.completion_ids[-1] in self.eos_token_ids):
            reason = "stop"
        else:
            reason = "length"
        self._stats["generated"] += n
        self._stats["prompt"] += len(job.prompt_ids)
        job.send(Finished(job.request.request_id, reason, job.stream.text, Usage(len(job.prompt_ids), n), error=error))


class _LogprobRecorder:
    """Last logits processor: remembers the log-softmax the sampler will draw from."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None

    def __call__(self, input_ids, scores):
        self.last = torch.log_softmax(scores.float(), dim=-1)
        return scores


class _BatchStreamer(BaseStreamer):
    """Receives each step's new tokens ([batch] ids) and turns them into per-request deltas."""

    def __init__(self, engine: HFEngine, batch: list[_Job], recorder: _LogprobRecorder | None):
        self.engine, self.batch, self.recorder = engine, batch, recorder
        self.seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self.seen_prompt:  # generate() first streams the prompt ids
            self.seen_prompt = True
            return
        tokens = value.reshape(-1).tolist()
        for row, (job, token) in enumerate(zip(self.batch, tokens)):
            if job.done or job.aborted or job.stream.stopped:
                continue
            if token in self.engine.eos_token_ids and not job.request.sampling.ignore_eos:
                job.completion_ids.append(token)
                self._close(job)
                continue
            job.completion_ids.append(token)
            text = job.stream.push([token])
            logprobs = None
            if self.recorder is not None and self.recorder.last is not None:
                logprobs = [float(self.recorder.last[row, token])]
            job.send(TokenDelta(job.request.request_id, text, [token], logprobs))
            if len(job.completion_ids) >= job.request.sampling.max_tokens or job.stream.stopped:
                self._close(job)

    def _close(self, job: _Job) -> None:
        self.engine._finish(job, None)

    def end(self) -> None:
        pass


class _RowStop:
    """Per-row stopping: a row ends when aborted, stopped by a stop string, or finished."""

    def __init__(self, batch: list[_Job]):
        self.batch = batch

    def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
        return torch.tensor([j.aborted or j.done or j.stream.stopped for j in self.batch])
