"""Streaming detokenization and stop-string matching, shared by the local backends.

Decoding token by token breaks multi-byte characters and merges (a token may only render once its
neighbour arrives), so we decode a sliding window and emit only the stable new suffix. Stop strings
may span tokens, so text that could still become a stop string is held back until it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IncrementalDetokenizer:
    """Turn a growing list of token ids into text deltas (the prefix-offset method)."""

    tokenizer: object
    token_ids: list[int] = field(default_factory=list)
    prefix_offset: int = 0
    read_offset: int = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)  # type: ignore[attr-defined]

    def push(self, new_ids: list[int]) -> str:
        """Add tokens and return the text they complete (may be empty until characters settle)."""
        self.token_ids.extend(new_ids)
        prefix_text = self._decode(self.token_ids[self.prefix_offset : self.read_offset])
        full_text = self._decode(self.token_ids[self.prefix_offset :])
        if len(full_text) > len(prefix_text) and not full_text.endswith("\ufffd"):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.token_ids)
            return full_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Whatever is still pending at the end of the sequence."""
        prefix_text = self._decode(self.token_ids[self.prefix_offset : self.read_offset])
        full_text = self._decode(self.token_ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.token_ids)
        return full_text[len(prefix_text) :] if len(full_text) > len(prefix_text) else ""


@dataclass
class StopMatcher:
    """Hold back text that may be the start of a stop string; report when one completes."""

    stops: list[str]
    pending: str = ""
    emitted: str = ""
    stopped: bool = False

    def push(self, text: str) -> str:
        """Feed new text; return what is safe to show. Sets `stopped` when a stop string appears."""
        if self.stopped:
            return ""
        if not self.stops:
            self.emitted += text
            return text
        self.pending += text
        cut = self._first_stop()
        if cut is not None:
            out, self.pending, self.stopped = self.pending[:cut], "", True
            self.emitted += out
            return out
        keep = self._longest_partial_stop()
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        self.emitted += out
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        self.emitted += out
        return out

    def _first_stop(self) -> int | None:
        found = [self.pending.find(s) for s in self.stops if s and s in self.pending]
        return min(found) if found else None

    def _longest_partial_stop(self) -> int:
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    best = max(best, n)
                    break
        return best


@dataclass
class OutputStream:
    """Detokenizer + stop matcher for one request: token ids in, visible text deltas out."""

    tokenizer: object
    stops: list[str]
    detok: IncrementalDetokenizer = field(init=False)
    matcher: StopMatcher = field(init=False)

    def __post_init__(self) -> None:
        self.detok = IncrementalDetokenizer(self.tokenizer)
        self.matcher = StopMatcher(list(self.stops))

    def push(self, token_ids: list[int]) -> str:
        return self.matcher.push(self.detok.push(token_ids))

    def finish(self) -> str:
        return self.matcher.push(self.detok.flush()) + self.matcher.flush()

    @property
    def stopped(self) -> bool:
        return self.matcher.stopped

    @property
    def text(self) -> str:
        return self.matcher.emitted
