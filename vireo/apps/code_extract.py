"""Pull the code out of a model's answer: fenced blocks first, the bare text as a fallback."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
ALIASES = {
    "python": {"python", "py", "python3"},
    "javascript": {"javascript", "js", "node"},
    "typescript": {"typescript", "ts"},
    "c++": {"c++", "cpp", "cxx"},
    "c#": {"c#", "csharp", "cs"},
    "shell": {"shell", "bash", "sh"},
    "rust": {"rust", "rs"},
    "go": {"go", "golang"},
}


def _matches(tag: str, language: str) -> bool:
    tag = tag.lower()
    return tag in ALIASES.get(language.lower(), {language.lower()})


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every ``` block; an unclosed last block runs to the end."""
    return [(m.group(1), m.group(2).rstrip()) for m in _FENCE.finditer(text)]


def extract_code(text: str, language: str, must_contain: str | None = None) -> str:
    """The best code block for `language`: one defining `must_contain` if given, else the first
    block tagged with the language, else the first untagged one, else the longest; no fence at
    all means the whole answer is taken as code."""
    blocks = fenced_blocks(text)
    if not blocks:
        return text.strip("\n")
    if must_contain:
        definition = rf"\b(?:def|class|function|fn)\s+{re.escape(must_contain)}\b"
        defining = [body for _, body in blocks if re.search(definition, body)]
        if defining:
            return defining[0]
    for wanted in (lambda tag: _matches(tag, language), lambda tag: not tag):
        chosen = [body for tag, body in blocks if wanted(tag)]
        if chosen:
            return chosen[0]
    return max((body for _, body in blocks), key=len)
