"""Constrained decoding: a choice list, a regex or a JSON schema decides which tokens may come next.

llguidance (the grammar engine behind vLLM's `guidance` backend, no dependencies of its own)
compiles each constraint once into a template matcher, cached by the constraint; every constrained
sequence owns a cheap copy that advances with each accepted token. Before sampling, one bitmask is
filled for the constrained rows of the batch only, and their forbidden logits become -inf. A
sequence finishes as soon as its grammar can take no further token.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable

import torch

from vireo.inference.api import Constraint, EngineError, InvalidConstraintError

if TYPE_CHECKING:
    import llguidance


def _llguidance():
    """llguidance, imported on first use: only constrained requests need it (GPU images may lack it)."""
    try:
        import llguidance
        import llguidance.hf
        import llguidance.torch
    except ImportError as exc:
        raise EngineError("constrained decoding needs the llguidance package (pip install llguidance)") from exc
    return llguidance


COMPILED_CACHE_SIZE = 256
# One space after ',' and ':' and no free whitespace: the json.dumps layout, and small models
# cannot wander into endless newlines between keys.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_BITS = torch.arange(32, dtype=torch.int32)


def grammar_for(constraint: Constraint) -> str:
    """The llguidance grammar of a constraint that sets exactly one of its fields."""
    given = [name for name in ("choices", "regex", "json_schema") if getattr(constraint, name) is not None]
    if len(given) != 1:
        raise InvalidConstraintError(
            f"a constraint needs exactly one of choices, regex or json_schema; got {', '.join(given) or 'none'}"
        )
    if constraint.choices is not None:
        if not constraint.choices:
            raise InvalidConstraintError("choices must list at least one option")
        options = " | ".join(json.dumps(str(c), ensure_ascii=False) for c in constraint.choices)
        return _llguidance().LLMatcher.grammar_from_lark(f"start: {options}")
    if constraint.regex is not None:
        return _llguidance().LLMatcher.grammar_from_regex(constraint.regex)
    try:
        schema = constraint.json_schema
        return _llguidance().LLMatcher.grammar_from_json_schema(schema, overrides=JSON_LAYOUT)
    except (TypeError, ValueError) as exc:
        raise InvalidConstraintError(f"invalid JSON schema: {exc}") from exc


def cache_key(constraint: Constraint) -> str:
    """Equal constraints give equal keys (lists and dicts are not hashable themselves).

    Keys keep their order: a schema's property order is the order the output writes them in.
    """
    return json.dumps([constraint.choices, constraint.regex, constraint.json_schema])


def _kind(constraint: Constraint) -> str:
    if constraint.choices is not None:
        return "choices"
    return "regex" if constraint.regex is not None else "JSON schema"


class GrammarMatcher:
    """One sequence's position in its grammar."""

    def __init__(self, matcher: llguidance.LLMatcher):
        self.matcher = matcher

    def advance(self, token: int) -> None:
        """Take an accepted token; the mask allowed it, so a refusal is a bug worth failing loudly."""
        if not self.matcher.consume_token(token):
            raise EngineError(f"token {token} breaks the constraint: {self.matcher.get_error()}")

    @property
    def is_complete(self) -> bool:
        """The grammar can take no further token: the output is whole."""
        return self.matcher.is_stopped()


class ConstrainedDecoding:
    """Compiles constraints for one tokenizer (cached) and masks the logits of constrained rows."""

    def __init__(self, hf_tokenizer, vocab_size: int, eos_token_ids: Iterable[int]):
        self.hf_tokenizer, self.vocab_size = hf_tokenizer, vocab_size
        self.eos_token_ids = sorted(eos_token_ids)
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._executor: llguidance.LLExecutor | None = None
        self.compiled = lru_cache(COMPILED_CACHE_SIZE)(self._compile)

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        if self._tokenizer is None:  # ~0.3 s, so only engines that see a constraint pay it
            self._tokenizer = _llguidance().hf.from_tokenizer(
                self.hf_tokenizer, n_vocab=self.vocab_size, eos_token=self.eos_token_ids
            )
        return self._tokenizer

    def matcher_for(self, constraint: Constraint) -> GrammarMatcher:
        """A fresh matcher for one sequence; raises InvalidConstraintError for a bad constraint."""
        template = self.compiled(cache_key(constraint))
        return GrammarMatcher(template.deep_copy())

    def _compile(self, key: str) -> llguidance.LLMatcher:
        choices, regex, json_schema = json.loads(key)
        constraint = Constraint(choices=choices, regex=regex, json_schema=json_schema)
        grammar = grammar_for(constraint)
        error = _llguidance().LLMatcher.validate_grammar(grammar, self.tokenizer)
        if error:
            raise InvalidConstraintError(f"invalid {_kind(constraint)}: {error.strip()}")
        return _llguidance().LLMatcher(self.tokenizer, grammar, log_level=0)

    def mask(self, logits: torch.Tensor, grammars: list[GrammarMatcher | None]) -> torch.Tensor:
        """`logits` [rows, vocab] with what each row's grammar forbids at -inf (rows without one kept).

        Returns a new tensor when any row is constrained, so the raw logits stay for logprobs.
        """
        constrained = [(row, grammar) for row, grammar in enumerate(grammars) if grammar is not None]
        if not constrained:
            return logits
        rows = [row for row, _ in constrained]
        bitmask = torch.full(_llguidance().torch.get_bitmask_shape(len(rows), logits.shape[-1]), -1, dtype=torch.int32)
        _llguidance().torch.fill_next_token_bitmask_par(
            self.executor, [(grammar.matcher, i) for i, (_, grammar) in enumerate(constrained)], bitmask
        )
        allowed = unpack_bitmask(bitmask, logits.shape[-1]).to(logits.device)
        index = torch.tensor(rows, device=logits.device)
        masked = logits.clone()
        masked[index] = logits[index].masked_fill(~allowed, float("-inf"))
        return masked

    @property
    def executor(self) -> llguidance.LLExecutor:
        if self._executor is None:
            self._executor = _llguidance().LLExecutor()
        return self._executor


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 words [rows, vocab/32], bit j of word w = token 32w + j allowed -> bool [rows, vocab]."""
    bits = (bitmask.unsqueeze(-1) >> _BITS) & 1
    return bits.flatten(1)[:, :vocab_size].bool()
