"""What local torch backends (hf, native) share: tokenizer, chat rendering, limits, scoring."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import AsyncIterator

import torch

from vireo.inference.api import (
    Engine,
    EngineEvent,
    Finished,
    GenerationRequest,
    PromptTooLongError,
    refuse_unsupported_inputs,
)
from vireo.inference.embedder import Embedder, shared_embedder
from vireo.inference.engine_config import EngineConfig

__all__ = ["EngineConfig", "LocalEngine", "events_until_finished", "torch_dtype"]


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


async def events_until_finished(events: asyncio.Queue) -> AsyncIterator[EngineEvent]:
    """A request's events as the engine's own thread queues them, through its `Finished`."""
    while True:
        event = await events.get()
        yield event
        if isinstance(event, Finished):
            return


class LocalEngine(Engine):
    """Base for engines that hold a HF tokenizer and a torch model in this process."""

    def __init__(self, config: EngineConfig, model_path: Path, model_name: str, embedder: Embedder | None = None):
        from transformers import AutoConfig, AutoTokenizer

        self.config = config = config.resolved()
        self.model_path = model_path
        self.model_name = model_name
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        hf_config = AutoConfig.from_pretrained(model_path)
        self.context_length = config.context_length(getattr(hf_config, "max_position_embeddings", None))
        self.eos_token_ids = self._eos_ids(hf_config)
        self._embedder = embedder or shared_embedder()
        self._score_lock = threading.Lock()
        if config.threads:
            torch.set_num_threads(config.threads)

    def _eos_ids(self, hf_config) -> set[int]:
        ids = set()
        for source in (hf_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return ids

    def render(self, request: GenerationRequest) -> str:
        if request.messages is not None:
            # transformers types `tools` as an invariant list[dict | Callable]: a list[dict] is what it reads
            tools: list | None = request.tools
            rendered = self.tokenizer.apply_chat_template(
                request.messages, tools=tools, tokenize=False, add_generation_prompt=True
            )
            assert isinstance(rendered, str)  # tokenize=False: the text, not ids or a BatchEncoding
            return rendered
        return request.prompt or ""

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids of the rendered prompt, refusing prompts that cannot fit (and images, and other
        models: a local engine serves its one text model) before any work."""
        refuse_unsupported_inputs(self, request)
        ids = self.encode(self.render(request))
        if not ids:
            ids = [self.tokenizer.bos_token_id or next(iter(self.eos_token_ids))]
        budget = request.sampling.max_tokens
        if len(ids) + budget > self.context_length:
            if len(ids) >= self.context_length:
                raise PromptTooLongError(len(ids), budget, self.context_length)
            request.sampling.max_tokens = self.context_length - len(ids)  # clamp like vLLM
        return ids

    # --- scoring: one forward over prompt + continuation --------------------------------------
    def forward_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits [batch, seq, vocab] for right-padded `input_ids`; backends provide the model."""
        raise NotImplementedError

    def score_sync(self, prompt: str, continuations: list[str]) -> list[float]:
        prompt_ids = self.encode(prompt)
        conts = [self.encode(c) for c in continuations]
        if any(not c for c in conts):
            raise ValueError("every continuation must encode to at least one token")
        seqs = [prompt_ids + c for c in conts]
        longest = max(len(s) for s in seqs)
        if longest > self.context_length:
            raise PromptTooLongError(longest, 0, self.context_length)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = torch.tensor([s + [pad] * (longest - len(s)) for s in seqs])
        with self._score_lock, torch.inference_mode():
            logprobs = torch.log_softmax(self.forward_logits(batch).float(), dim=-1)
        scores = []
        for row, cont in enumerate(conts):
            start = len(prompt_ids)
            positions = torch.arange(start - 1, start - 1 + len(cont))
            picked = logprobs[row, positions, torch.tensor(cont)]
            scores.append(float(picked.sum()))
        return scores

    async def score(self, prompt: str, continuations: list[str]) -> list[float]:
        return await asyncio.to_thread(self.score_sync, prompt, continuations)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._embedder.encode, texts)
