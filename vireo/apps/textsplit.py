"""Split long text into model-sized pieces: chunks for map-reduce, lines for translation.

Chunks pack whole paragraphs, falling back to sentences and then words only when a piece alone is
too long. Translation units keep each line's markup (indent, bullet, number, heading, quote) out
of the text sent to a model, so the document can be put back together with its layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

TokenCounter = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？…])[\"'”’)\]]*\s+")
_LINE_MARKUP = re.compile(r"^(\s*(?:(?:[-*+•]|\d{1,3}[.)]|#{1,6}|>)\s+)*)(.*?)(\s*)$")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs separated by blank lines, stripped, empty ones dropped."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def split_sentences(text: str) -> list[str]:
    """Sentences by end punctuation followed by space; good enough for chunking."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def _split_words(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for word in text.split():
        if current and count(" ".join(current + [word])) > max_tokens:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    return pieces + ([" ".join(current)] if current else [])


def _pack(units: list[str], max_tokens: int, count: TokenCounter, joiner: str) -> list[str]:
    """Greedily join consecutive units while the joined text fits `max_tokens`."""
    chunks: list[str] = []
    current: list[str] = []
    for unit in units:
        if current and count(joiner.join(current + [unit])) > max_tokens:
            chunks.append(joiner.join(current))
            current = []
        current.append(unit)
    return chunks + ([joiner.join(current)] if current else [])


def fit_pieces(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """`text` as one piece if it fits, else sentence groups (and word groups for giant sentences)."""
    if count(text) <= max_tokens:
        return [text]
    sentences: list[str] = []
    for sentence in split_sentences(text):
        sentences += [sentence] if count(sentence) <= max_tokens else _split_words(sentence, max_tokens, count)
    return _pack(sentences, max_tokens, count, " ")


def chunk_text(text: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Chunks of at most `max_tokens`, cut at paragraph, then sentence, then word boundaries."""
    units: list[str] = []
    for paragraph in split_paragraphs(text):
        units += fit_pieces(paragraph, max_tokens, count)
    return _pack(units, max_tokens, count, "\n\n")


@dataclass
class Line:
    """One output line: markup kept verbatim around `text`, which is what gets translated."""

    prefix: str
    text: str
    suffix: str = "\n"

    def render(self, translated: str | None = None) -> str:
        return f"{self.prefix}{self.text if translated is None else translated}{self.suffix}"


def split_lines(text: str) -> list[Line]:
    """Lines with their markup split off; hard-wrapped paragraph lines are joined into one."""
    lines: list[Line] = []
    for raw in text.splitlines():
        match = _LINE_MARKUP.match(raw)
        assert match is not None  # every part of the pattern is optional: every line matches
        prefix, body, _ = match.groups()
        if not body:
            lines.append(Line(raw, ""))
        elif _continues(lines, prefix):
            lines[-1].text += " " + body
        else:
            lines.append(Line(prefix, body))
    if lines and not text.endswith("\n"):
        lines[-1].suffix = ""
    return lines


def _continues(lines: list[Line], prefix: str) -> bool:
    """A plain line after a plain line that stopped mid-sentence is the same wrapped paragraph."""
    if not lines or prefix or lines[-1].prefix or not lines[-1].text:
        return False
    return not re.search(r"[.!?:;。！？…\"'”)\]]$", lines[-1].text)
