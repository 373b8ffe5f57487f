"""What a job's input must be for the engine to take it, checked at submit time.

Numbers: Python's JSON parser accepts `NaN`, `Infinity` and integers of any size, none of which an
engine can use (a seed of 2**70 used to fail in the worker). Length: the served model's tokenizer
and context; tokenizing runs on a thread of its own, so a long prompt never stalls the event loop,
and a text longer in characters than the context could hold is never tokenized at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

from vireo.platform.settings import Settings

log = logging.getLogger(__name__)
INT64 = 2**63


def unrepresentable_number(value: Any) -> tuple[tuple, str] | None:
    """(path, why) of a number no engine can take: NaN, ±Infinity, or an integer beyond 64 bits."""
    stack: list[tuple[tuple, Any]] = [((), value)]
    while stack:  # a loop, not recursion: JSON may nest deeper than Python's stack
        path, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return path, f"must be a finite number, not {item}"
        if isinstance(item, int) and not isinstance(item, bool) and not -INT64 <= item < INT64:
            return path, "is out of range: integers must fit in 64 bits (-2**63 to 2**63 - 1)"
        if isinstance(item, dict):
            stack.extend(((*path, key), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
    return None


class TokenModel:
    """The served model as submit-time checks see it: its tokenizer's text -> ids, context and longest token."""

    def __init__(self, encode: Callable[[str], list[int]], vocabulary: Iterable[str], context: int):
        self.encode = encode
        self.context = context
        # no token covers more characters than its vocabulary entry has (byte-level BPE: one per byte)
        self.longest_token_chars = max(len(token) for token in vocabulary)

    def counter(self) -> Callable[[str], int]:
        """`count_tokens` for one input: exact, until the texts counted so far have more characters
        than the context could hold; then ⌈chars / longest token⌉, a lower bound already past it,
        with no tokenizing."""
        budget = self.context * self.longest_token_chars
        seen = 0

        def count(text: str) -> int:
            nonlocal seen
            seen += len(text)
            if seen > budget:
                return -(-len(text) // self.longest_token_chars)
            return len(self.encode(text))

        return count


class ModelLimits:
    """Too-long input fails at submit time (422), checked on one tokenizing thread of its own
    (one tokenizer is not safe to share between threads)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vireo-tokenize")

    @cached_property
    def model(self) -> TokenModel | None:
        try:
            from vireo.inference.prompt_text import load_encoder
            from vireo.inference.registry import ModelRegistry

            engine = self.settings.engine
            path = ModelRegistry(engine.home).resolve(engine.model).path
            # the worker's engine computes its limit with the same call on the same settings
            positions = json.loads((path / "config.json").read_text()).get("max_position_embeddings")
            return TokenModel(*load_encoder(path), engine.context_length(positions))
        except Exception:  # a remote-only model: the worker checks length instead
            log.warning("no local tokenizer for %s; input length is checked by the worker", self.settings.model)
            return None

    def load(self) -> TokenModel | None:
        with self._lock:
            return self.model

    async def check(self, app, input) -> None:
        """Raise the app's AppInputError for input the model cannot serve."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._check, app, input)

    def _check(self, app, input) -> None:
        model = self.load()
        if model is not None:
            app.validate_for_engine(input, model.context, model.counter())
