"""The native engine: the Engine API over a step thread that batches every request.

`generate()` builds a `Sequence`, hands it to the step thread (`step_loop.py`) and awaits the
events that thread sends back (`outputs.py`). The parts, one file each: scheduling/ (scheduler,
block manager, prefix cache), worker/ (model runner, CUDA graphs), models/ (the decoder and its
layers), sampling/ (sampler, grammars), spec_decode/ (speculative decoding), overlap.py
(overlapped decoding on CUDA), stats.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import torch

from vireo.inference.api import EngineError, EngineEvent, EngineStats, GenerationRequest
from vireo.inference.local import EngineConfig, LocalEngine, events_until_finished, torch_dtype
from vireo.inference.native.heap import release_free_heap
from vireo.inference.native.kv_budget import kv_cache_slots
from vireo.inference.native.models.llama import LlamaModel
from vireo.inference.native.outputs import RequestChannel, RequestOutputs
from vireo.inference.native.overlap import OverlappedDecoding
from vireo.inference.native.parallel.ranks import ShardedRunner, start_ranks
from vireo.inference.native.sampling.constraints import ConstrainedDecoding, GrammarMatcher
from vireo.inference.native.sampling.step_sampler import StepSampler
from vireo.inference.native.scheduling.block_manager import BlockManager
from vireo.inference.native.scheduling.prefix_cache import NoPrefixCache, PrefixCache
from vireo.inference.native.scheduling.scheduler import Scheduler
from vireo.inference.native.scheduling.sequence import Sequence
from vireo.inference.native.spec_decode.speculative import Speculator
from vireo.inference.native.stats import EngineCounters, engine_stats
from vireo.inference.native.step_loop import StepLoop
from vireo.inference.native.worker.model_runner import ModelRunner
from vireo.inference.textstream import OutputStream


class NativeEngine(LocalEngine):
    """Paged-KV continuous-batching engine for Llama/Qwen2 models in plain torch."""

    backend = "native"

    def __init__(self, config: EngineConfig, model_path: Path, model_name: str, model: LlamaModel | None = None, **kw):
        if model is not None:  # engines sharing one set of weights (tests, tools) run where the weights are
            config = config.model_copy(
                update={"device": model.device.type, "dtype": str(model.dtype).removeprefix("torch.")}
            )
        super().__init__(config, model_path, model_name, **kw)
        config = self.config  # resolved: a concrete device, dtype and overlap choice
        assert config.overlap_decode is not None  # made a bool by `EngineConfig.resolved`
        assert config.max_tokens_per_step is not None  # (and the step budget set for the device)
        if config.tensor_parallel_size > 1:  # this process is rank 0; the other ranks start here
            if model is not None:
                raise ValueError("a tensor-parallel engine loads its own shards: pass no model")
            self.runner: ModelRunner = start_ranks(config, model_path, self.context_length)
            self.model, num_blocks = self.runner.model, self.runner.num_blocks
        else:
            self.model = model or LlamaModel.from_pretrained(
                model_path,
                torch_dtype(config.dtype),
                config.max_batch,
                config.device,
                quantization=config.quantization,
                dense_gemv=config.dense_gemv,
            )
            kv_dtype = torch_dtype(config.kv_cache_dtype)
            slots = kv_cache_slots(config, self.model.shape, kv_dtype, self.model.device)
            num_blocks = max(1, slots // config.block_size)
            self.runner = ModelRunner(
                self.model,
                num_blocks,
                config.block_size,
                config.device,
                config.cuda_graphs,
                config.max_batch,
                self.context_length,
                kv_dtype,
                config.cuda_graphs and config.piecewise_graphs,
                config.max_tokens_per_step,
            )
        with torch.inference_mode():
            self.runner.warm_up_kernels()  # Triton compiles now, not inside served steps (every rank's too)
            self.runner.capture_graphs()  # and the decode graphs, not inside the first request
        self.blocks = BlockManager(
            num_blocks, config.block_size, PrefixCache() if config.prefix_caching else NoPrefixCache()
        )
        self.scheduler = Scheduler(
            self.blocks,
            config.max_batch,
            config.max_tokens_per_step,
            frozenset(self.eos_token_ids),
            self.context_length,
        )
        self.speculator = Speculator(config, self.blocks, self._draft_path(), (model_path, self.model))
        self.constraints = ConstrainedDecoding(self.tokenizer, self.model.shape.vocab, self.eos_token_ids)
        self.overlap = OverlappedDecoding(self.runner, self.scheduler, config.overlap_decode, self.context_length)
        self.outputs = RequestOutputs()
        self.counters = EngineCounters()
        self.loop = StepLoop(
            self.scheduler,
            self.runner,
            self.speculator,
            StepSampler(self.constraints, self.speculator),
            self.overlap,
            self.outputs,
            self.counters,
            config.threads,
            config.admission_window_ms / 1000,
        )
        release_free_heap()  # what loading freed (heap.py)

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
            raise EngineError(
                f"request needs {needed} KV slots; the cache holds {self.blocks.num_blocks * self.blocks.block_size}"
            )
        grammar = await self._grammar_for(request)
        # Guesses are verified against the model, not the grammar: constrained requests never speculate.
        speculation = "off" if grammar else self.speculator.mode_for(request.speculation)
        seq = Sequence(
            request.request_id,
            prompt_ids,
            request.sampling,
            request.priority,
            request.app,
            self._use_prefix_cache(request),
            speculation,
            grammar=grammar,
        )
        channel = RequestChannel(
            seq, OutputStream(self.tokenizer, request.sampling.stop), asyncio.get_running_loop(), asyncio.Queue()
        )
        self.loop.submit(channel)
        try:
            async for event in events_until_finished(channel.events):
                yield event
        finally:
            if not seq.is_finished:  # the caller stopped listening: abort at the next step
                self.loop.abort(request.request_id)

    async def _grammar_for(self, request: GenerationRequest) -> GrammarMatcher | None:
        """The request's grammar matcher (compiled off the event loop); InvalidConstraintError if bad."""
        if request.constraint is None:
            return None
        return await asyncio.to_thread(self.constraints.matcher_for, request.constraint)

    def _use_prefix_cache(self, request: GenerationRequest) -> bool:
        return self.config.prefix_caching and request.prefix_cache is not False

    async def abort(self, request_id: str) -> None:
        self.loop.abort(request_id)

    async def shutdown(self) -> None:
        self.loop.stop()
        await asyncio.to_thread(self.loop.join, 5)
        if isinstance(self.runner, ShardedRunner):
            await asyncio.to_thread(self.runner.close)

    def forward_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.runner.forward_logits(input_ids)

    def stats(self) -> EngineStats:
        return engine_stats(self.backend, self.model_name, self.scheduler, self.blocks, self.speculator, self.counters)
