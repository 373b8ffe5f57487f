"""What local torch backends (hf, native) share: tokenizer, chat rendering, limits, scoring."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import AsyncIterator

import torch

from vireo.inference.api import (
    Engine,
    EngineError,
    EngineEvent,
    Finished,
    GenerationRequest,
    PromptTooLongError,
    TokenLogprob,
    refuse_unsupported_inputs,
)
from vireo.inference.embedder import Embedder, shared_embedder
from vireo.inference.engine_config import EngineConfig
from vireo.inference.model_config import read_model_config
from vireo.inference.prompt_text import PromptText, load_tokenizer

__all__ = ["EngineConfig", "LocalEngine", "events_until_finished", "torch_dtype"]

LOGPROB_ROWS = 512  # positions log-softmaxed at once by `sequence_logprobs` (a float32 row is the vocabulary)
MIN_LOGPROB = -9999.0  # JSON carries no -inf: a token the model rules out reads this (as vLLM's replies do)


def _finite(logprob: float) -> float:
    return max(logprob, MIN_LOGPROB)


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
        self.config = config = config.resolved()
        self.model_path = model_path
        self.model_name = model_name
        self.tokenizer = load_tokenizer(model_path)
        self.text = PromptText(self.tokenizer, model_name)
        hf_config = read_model_config(model_path)
        self.context_length = config.context_length(getattr(hf_config, "max_position_embeddings", None))
        self.eos_token_ids = self._eos_ids(hf_config)
        self._embedder = embedder or shared_embedder()
        self._score_lock = threading.Lock()
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.device == "cpu":  # our AVX2 kernels, or PyTorch's operators (settings)
            from vireo.kernels import cpu_extensions

            cpu_extensions.configure(config.cpu_kernels)

    def _eos_ids(self, hf_config) -> set[int]:
        ids = set()
        for source in (hf_config.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(source)
        return ids

    def render(self, request: GenerationRequest) -> str:
        return self.text.render(request)

    def encode(self, text: str) -> list[int]:
        return self.text.encode(text)

    def decode(self, token_ids: list[int]) -> str:
        return self.text.decode(token_ids)

    def check_token_ids(self, token_ids: list[int]) -> None:
        self.text.check_token_ids(token_ids)

    def count_tokens(self, text: str) -> int:
        return self.text.count_tokens(text)

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids of the rendered prompt, refusing prompts that cannot fit (and images, and other
        models: a local engine serves its one text model) before any work."""
        refuse_unsupported_inputs(self, request)
        if request.prompt_token_ids is not None:
            self.check_token_ids(request.prompt_token_ids)
            ids = list(request.prompt_token_ids)
        else:
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
        """Logits [batch, seq, vocab] for right-padded `input_ids`; backends that run the model here
        provide it, the others refuse (vLLM scores through its own engine)."""
        raise EngineError(
            f"the {self.backend} backend does not run the model over a given sequence here; "
            "serve with the native or hf backend for the log-probabilities of a token sequence"
        )

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

    def sequence_logprobs_sync(self, token_ids: list[int], top: int = 0, start: int = 0) -> list[TokenLogprob]:
        """`sequence_logprobs` on the calling thread: one forward over `token_ids`; the row of position
        i - 1 holds token i's distribution (the first token has none)."""
        if not token_ids:
            raise ValueError("no tokens to score")
        self.check_token_ids(token_ids)
        if len(token_ids) > self.context_length:
            raise PromptTooLongError(len(token_ids), 0, self.context_length)
        start = min(max(start, 0), len(token_ids))
        first = max(start, 1)  # the first scored token: position 0 has no distribution
        targets = torch.tensor(token_ids[first:])
        picked: list[torch.Tensor] = []
        top_values: list[torch.Tensor] = []
        top_ids: list[torch.Tensor] = []
        with self._score_lock, torch.inference_mode():
            logits = self.forward_logits(torch.tensor([token_ids]))[0]
            for low in range(first, len(token_ids), LOGPROB_ROWS):  # float32 log-softmax a slice at a time
                high = min(low + LOGPROB_ROWS, len(token_ids))
                rows = torch.log_softmax(logits[low - 1 : high - 1].float(), dim=-1).cpu()
                picked.append(rows.gather(1, targets[low - first : high - first, None])[:, 0])
                if top:
                    values, ids = rows.topk(min(top, rows.shape[-1]), dim=-1)
                    top_values.append(values)
                    top_ids.append(ids)
        logprobs = torch.cat(picked).tolist() if picked else []
        best_values = torch.cat(top_values).tolist() if top_values else [[] for _ in logprobs]
        best_ids = torch.cat(top_ids).tolist() if top_ids else [[] for _ in logprobs]
        texts = self.tokenizer.batch_decode([[t] for t in token_ids[start:]])
        distinct = sorted({t for row in best_ids for t in row})
        alternatives = dict(zip(distinct, self.tokenizer.batch_decode([[t] for t in distinct])))
        scored = [TokenLogprob(token_ids[0], texts[0], None)] if start == 0 else []
        for token_id, text, logprob, values, ids in zip(
            token_ids[first:], texts[first - start :], logprobs, best_values, best_ids
        ):
            top_tokens = [TokenLogprob(i, alternatives[i], _finite(v)) for i, v in zip(ids, values)]
            scored.append(TokenLogprob(token_id, text, _finite(logprob), top_tokens))
        return scored

    async def sequence_logprobs(self, token_ids: list[int], top: int = 0, start: int = 0) -> list[TokenLogprob]:
        return await asyncio.to_thread(self.sequence_logprobs_sync, token_ids, top, start)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._embedder.encode, texts)
