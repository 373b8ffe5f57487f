"""The engine's step thread: drain the inbox, then schedule -> run -> sample -> update -> outputs.

`generate()` and `abort()` only post to the inbox; everything that changes engine state happens
on this one thread, so no part of the engine needs a lock. A failed step fails the requests it
holds, never hangs them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import torch

from vireo.inference.api import FinishReason
from vireo.inference.native.heap import release_free_heap
from vireo.inference.native.outputs import RequestChannel, RequestOutputs
from vireo.inference.native.overlap import OverlappedDecoding
from vireo.inference.native.sampling.step_sampler import StepSampler
from vireo.inference.native.scheduling.batch import SampledTokens, ScheduledSeq
from vireo.inference.native.scheduling.scheduler import Scheduler
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.spec_decode.speculative import Speculator
from vireo.inference.native.stats import EngineCounters
from vireo.inference.native.worker.model_runner import ModelRunner

log = logging.getLogger(__name__)
IDLE_WAIT_S = 0.05
# On CPU a step of this many prompt tokens or more runs its linears over de-quantized weight slices and large
# activations; glibc keeps what they freed in its heap, resident (heap.py). Handing it back after such a step
# holds RSS near the model + KV cache (the 1.5B Qwen after eight 200-token prompts: 1517 -> 1379 MB) for a
# trim that costs well under a millisecond beside a step of hundreds.
TRIM_AFTER_PREFILL_TOKENS = 64


class StepLoop:
    """Runs engine steps on a daemon thread until `stop()`."""

    def __init__(
        self,
        scheduler: Scheduler,
        runner: ModelRunner,
        speculator: Speculator,
        sampler: StepSampler,
        overlap: OverlappedDecoding,
        outputs: RequestOutputs,
        counters: EngineCounters,
        threads: int | None = None,
        admission_window_s: float = 0.0,
    ):
        self.scheduler, self.runner, self.speculator = scheduler, runner, speculator
        self.sampler, self.overlap, self.outputs, self.counters = sampler, overlap, outputs, counters
        self.threads = threads
        self.admission_window_s = admission_window_s
        self.trims_heap = runner.device.type == "cpu"
        self._waiting_since: float | None = None  # when a step first saw the oldest request still waiting
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="native-engine", daemon=True)
        self._thread.start()

    # --- called from other threads ----------------------------------------------------------------
    def submit(self, channel: RequestChannel) -> None:
        self._post(("add", channel))

    def abort(self, request_id: str) -> None:
        self._post(("abort", request_id))

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _post(self, message: tuple) -> None:
        self._inbox.put(message)
        self._wake.set()

    # --- the step thread ----------------------------------------------------------------------------
    def _serve(self) -> None:
        if self.threads:  # OpenMP thread counts are per thread: set it here too
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            while not self._stop.is_set():
                self._drain_inbox()
                self.outputs.flush()  # aborts' final events
                if not self.scheduler.has_work and self.overlap.flight is None:
                    self._wake.wait(IDLE_WAIT_S)
                    self._wake.clear()
                    continue
                try:
                    self.step()
                except Exception as exc:  # a failed step fails its requests, never hangs them
                    log.exception("native engine step failed")
                    self._fail_all(f"{type(exc).__name__}: {exc}")
                self.outputs.flush()

    def _drain_inbox(self) -> None:
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "add":
                self.outputs.add(payload)
                self.scheduler.add(payload.seq)
            elif (channel := self.outputs.get(payload)) is not None:
                self._end(channel.seq, "abort")

    def admit_now(self) -> bool:
        """Whether waiting requests join this step (`Scheduler.admission_due`, the oldest's wait timed here)."""
        now = time.monotonic()
        if self.scheduler.waiting and self._waiting_since is None:
            self._waiting_since = now
        waited = now - self._waiting_since if self._waiting_since is not None else 0.0
        return self.scheduler.admission_due(waited, self.admission_window_s)

    def step(self) -> None:
        self._step(self.admit_now())
        if not self.scheduler.waiting:  # the next arrival opens a window of its own
            self._waiting_since = None

    def _step(self, admit: bool) -> None:
        started = time.perf_counter()
        if self.overlap.flight is not None:  # the next step is queued (admitting what may join it), this one lands
            self._apply(*self.overlap.advance(admitting=admit))
            self.counters.count_step("decode_overlapped", time.perf_counter() - started)
            return
        batch = self.scheduler.schedule(admit)
        if not batch.items:
            return
        if self.overlap.takes(batch):
            self.overlap.start(batch.items)
            self.counters.count_step("decode_overlapped", time.perf_counter() - started)
            return
        decodes = sum(item.num_tokens == 1 for item in batch.items)
        kind = "decode" if decodes == len(batch.items) else "mixed" if decodes else "prefill"
        scheduled = time.perf_counter()
        self.speculator.attach_drafts(batch)
        self.runner.prepare_cache(self.scheduler.blocks)
        inputs, logits = self.runner.run(batch.items)
        sampled = self.sampler.sample(inputs, logits)
        self._apply(inputs.order, sampled)
        if self.trims_heap and sum(item.num_tokens for item in batch.items) >= TRIM_AFTER_PREFILL_TOKENS:
            release_free_heap()
        ended = time.perf_counter()
        self.counters.count_step(kind, ended - started)
        if kind == "decode":  # decode steps teach the speculator (their time from drafting on)
            emitted = sum(len(sampled[item].tokens) for item in batch.items if item in sampled)
            self.speculator.observe_step(batch, emitted, ended - scheduled)

    def _apply(self, items: list[ScheduledSeq], sampled: dict[ScheduledSeq, SampledTokens]) -> None:
        """The scheduler takes the step's tokens; callers get their deltas and final events."""
        for update in self.scheduler.update(items, sampled, self.outputs.push):
            self.counters.count_generated(update.appended)
            self.outputs.deliver(update)
            if update.finish_reason:
                self._release(update.seq)

    def _end(self, seq: Sequence, reason: FinishReason, error: str | None = None) -> None:
        """Finish a request from outside a step (abort, failure)."""
        if not seq.is_finished:  # (a step that failed half way may have finished it already)
            self.scheduler.finish(seq, reason)
        self._release(seq, error)

    def _release(self, seq: Sequence, error: str | None = None) -> None:
        self.speculator.release(seq)
        self.counters.count_finished(seq)
        self.outputs.finish(seq, error)

    def _fail_all(self, error: str) -> None:
        self.overlap.flight = None
        for channel in list(self.outputs.channels.values()):
            self._end(channel.seq, "error", error)
