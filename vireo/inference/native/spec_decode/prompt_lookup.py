"""Prompt lookup: guess a sequence's next tokens by finding its last n tokens earlier in it.

Grounded outputs (summaries, answers that quote, edited code) repeat their input, so the tokens that
followed the latest earlier occurrence of the current tail are a good guess. Each sequence keeps an
index from every n-gram (n = min_ngram..max_ngram) to its latest start, extended by the tokens
appended since the last call, so a proposal costs a few dictionary lookups however long the
sequence is, rather than a scan of all its tokens at every decode step.
"""

from __future__ import annotations


class NgramIndex:
    """Latest start position of each n-gram of one sequence that has at least one token after it."""

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.latest: dict[tuple[int, ...], int] = {}
        self.indexed_end = 0  # every n-gram ending at or before this position is in `latest`

    def extend(self, tokens: list[int]) -> None:
        """Index the n-grams that now have a following token (token lists only ever grow)."""
        last_end = len(tokens) - 1  # an n-gram must end before the final token to have a successor
        for end in range(self.indexed_end + 1, last_end + 1):
            for n in range(self.min_ngram, min(self.max_ngram, end) + 1):
                self.latest[tuple(tokens[end - n : end])] = end - n
        self.indexed_end = max(self.indexed_end, last_end)

    def propose(self, tokens: list[int], k: int) -> list[int]:
        """Up to k tokens that followed the latest earlier match of the longest matching tail."""
        self.extend(tokens)
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(tokens) <= n:
                continue
            start = self.latest.get(tuple(tokens[-n:]))
            if start is not None:
                return tokens[start + n : start + n + k]
        return []


class PromptLookupProposer:
    """One n-gram index per live sequence, dropped when the sequence finishes."""

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.indexes: dict[int, NgramIndex] = {}

    def propose(self, seq_id: int, tokens: list[int], k: int) -> list[int]:
        index = self.indexes.get(seq_id)
        if index is None:
            index = self.indexes[seq_id] = NgramIndex(self.max_ngram, self.min_ngram)
        return index.propose(tokens, k)

    def release(self, seq_id: int) -> None:
        self.indexes.pop(seq_id, None)
