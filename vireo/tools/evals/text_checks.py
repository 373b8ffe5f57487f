"""Checkable properties of open-ended text (chat replies, generated copy), the reference-based half
of their evals next to the judge: a required word is there, the length is in its band, the asked
format was kept. Each check is `name(text, parameter) -> bool`; `run_checks` applies an item's."""

from __future__ import annotations

import json
import re
from typing import Any, Callable

LIST_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S")


def words(text: str) -> list[str]:
    return re.findall(r"[\w'’-]+", text)


def mentions(text: str, required: list[str]) -> bool:
    """Every required term appears, case-insensitive, as whole words (so 'Paris' is not 'Parisian')."""
    return all(re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE) for term in required)


def max_words(text: str, limit: int) -> bool:
    return 0 < len(words(text)) <= limit


def word_band(text: str, band: list[int]) -> bool:
    """The word count lies within [low, high]."""
    low, high = band
    return low <= len(words(text)) <= high


def list_items(text: str, count: int) -> bool:
    """Exactly `count` bulleted or numbered lines."""
    return sum(bool(LIST_LINE.match(line)) for line in text.splitlines()) == count


def starts_with_any(text: str, openings: list[str]) -> bool:
    """The reply opens with one of `openings` (case-insensitive), e.g. a yes/no answer."""
    first = (words(text) or [""])[0].lower()
    return first in {o.lower() for o in openings}


def json_keys(text: str, keys: list[str]) -> bool:
    """The reply holds a JSON object (a code fence around it is fine) with at least these keys."""
    start, end = text.find("{"), text.rfind("}")
    try:
        value = json.loads(text[start : end + 1]) if 0 <= start < end else None
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and set(keys) <= set(value)


CHECKS: dict[str, Callable[[str, Any], bool]] = {
    "mentions": mentions,
    "max_words": max_words,
    "word_band": word_band,
    "list_items": list_items,
    "starts_with_any": starts_with_any,
    "json_keys": json_keys,
}


def run_checks(text: str, checks: dict) -> dict[str, bool]:
    """{check name: passed} for each of an item's `checks` ({name: parameter})."""
    return {name: CHECKS[name](text, parameter) for name, parameter in checks.items()}


def pass_rates(results: list[dict[str, bool]]) -> dict[str, float]:
    """Per check name, the share of the items that had it and passed; 'all' is the share of items
    that passed every one of their checks."""
    rates = {}
    for name in sorted({n for r in results for n in r}):
        had = [r[name] for r in results if name in r]
        rates[name] = round(sum(had) / len(had), 3)
    rates["all"] = round(sum(all(r.values()) for r in results) / len(results), 3) if results else 0.0
    return rates
