"""Pick next tokens from logits: greedy rows in one argmax, sampled rows with their own generator.

A request with a seed owns a `torch.Generator`, so its samples do not depend on what else is in
the batch. `probabilities` gives the exact distribution a row samples from (after temperature,
top-k and top-p), which speculative rejection sampling needs.
"""

from __future__ import annotations

import torch

from vireo.inference.api import SamplingParams


def probabilities(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The distribution [..., vocab] a non-greedy request samples from."""
    scaled = logits / params.temperature
    if params.top_k and params.top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, params.top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(before >= params.top_p, 0.0)  # keep the nucleus
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> int:
    """One token from a 1-D distribution."""
    return int(torch.multinomial(probs, 1, generator=generator))


def sample_rows(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> list[int]:
    """Next token for each row of `logits` [rows, vocab]."""
    tokens = logits.argmax(dim=-1).tolist()
    for row, p in enumerate(params):
        if not p.greedy:
            tokens[row] = draw(probabilities(logits[row], p), generators[row])
    return tokens


def token_logprobs(logits: torch.Tensor, tokens: list[int]) -> list[float]:
    """Log-probability of each chosen token under the model's (unscaled) distribution."""
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs[torch.arange(len(tokens)), torch.tensor(tokens)].tolist()
