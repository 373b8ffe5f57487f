"""What a task changed in a text: a unified diff of before and after (no Streamlit here)."""

from __future__ import annotations

import difflib


def unified_diff(before: str, after: str, before_name: str = "before", after_name: str = "after") -> str:
    """The changes from `before` to `after` as a unified diff; "" when nothing changed."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), fromfile=before_name, tofile=after_name, lineterm=""
    )
    return "\n".join(lines)


def changed_lines(before: str, after: str) -> tuple[int, int]:
    """(lines added, lines removed) between the two texts."""
    added = removed = 0
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        added += line.startswith("+ ")
        removed += line.startswith("- ")
    return added, removed
