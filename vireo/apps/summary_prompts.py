"""Prompts and output clean-up for the summarize app (map step, final step, three styles)."""

from __future__ import annotations

import re

SYSTEM = "You summarize texts faithfully. Use only facts stated in the text; never invent details."

STYLE_INSTRUCTIONS = {
    "paragraph": "Write one paragraph of at most {words} words.",
    "bullets": "Write {points} short bullet points, each on its own line starting with '- ', "
    "at most {words} words in all.",
    "tldr": "Write a single-sentence TL;DR of at most {words} words.",
}


def max_new_tokens(words: int, style: str) -> int:
    """Room for `words` words (about 1.4 tokens each) plus the markup of the style."""
    return int(words * 1.6) + (3 * bullet_count(words) if style == "bullets" else 0) + 16


def bullet_count(words: int) -> int:
    return max(3, min(8, words // 20))


def _instruction(style: str, words: int) -> str:
    return STYLE_INSTRUCTIONS[style].format(words=words, points=bullet_count(words))


def _focus(focus: str | None) -> str:
    return f" Concentrate on: {focus.strip()}." if focus and focus.strip() else ""


def map_messages(piece: str, index: int, total: int, words: int, focus: str | None) -> list[dict]:
    """Summarize one part of a longer document; the parts' summaries get combined later."""
    user = (
        f"This is part {index + 1} of {total} of a longer document. Summarize this part in at most "
        f"{words} words, keeping key facts, names and numbers.{_focus(focus)}\n\nText:\n{piece}\n\nSummary:"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def final_messages(text: str, input, combined: bool) -> list[dict]:
    """The last step: the whole text, or the joined partial summaries when `combined`."""
    what = (
        "Below are summaries of consecutive parts of one document. Combine them into one summary of the whole document."
        if combined
        else "Summarize the following text."
    )
    user = f"{what} {_instruction(input.style, input.words())}{_focus(input.focus)}\n\nText:\n{text}\n\nSummary:"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


_LABEL = re.compile(r"^\s*(?:summary|tl;?dr|here is (?:a|the) summary[^:]*)\s*:\s*", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s*")


def clean_summary(text: str, style: str) -> str:
    """Strip labels the model adds ("Summary:"); normalise bullets to '- ' lines."""
    text = _LABEL.sub("", text.strip()).strip()
    if style != "bullets":
        return text
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    return "\n".join(f"- {line}" for line in lines if line and not line.endswith(":"))  # drop headings
