"""Field names as words for people: `use_llm` → "Use LLM", `timeout_s` → "Timeout (seconds)"; a title
the app's author wrote is kept (no Streamlit here)."""

from __future__ import annotations

# words that are abbreviations people read in capitals (or as written here)
SPELLING = {
    "llm": "LLM",
    "vlm": "VLM",
    "ocr": "OCR",
    "id": "ID",
    "ids": "IDs",
    "url": "URL",
    "urls": "URLs",
    "api": "API",
    "csv": "CSV",
    "json": "JSON",
    "jsonl": "JSONL",
    "mmr": "MMR",
    "nli": "NLI",
    "pdf": "PDF",
    "ab": "A/B",
}
UNITS = {"s": "seconds", "ms": "milliseconds", "mb": "MB", "kb": "KB"}


def pydantic_title(name: str) -> str:
    """The title pydantic writes itself into a schema when the author gave none ("use_llm" → "Use Llm")."""
    return name.title().replace("_", " ")


def humanize(name: str) -> str:
    """A field name as a label: words, abbreviations in capitals, a unit suffix spelled out."""
    words = [w for w in name.split("_") if w]
    if not words:
        return name
    unit = UNITS.get(words[-1].lower()) if len(words) > 1 else None
    if unit:
        words = words[:-1]
    spelled = [SPELLING.get(w.lower(), w.lower()) for w in words]
    first = spelled[0]
    spelled[0] = first if first in SPELLING.values() else first[:1].upper() + first[1:]
    return " ".join(spelled) + (f" ({unit})" if unit else "")


def field_label(name: str, schema_title: str | None) -> str:
    """The schema's title when the app's author wrote one, else the name made readable."""
    if schema_title and schema_title != pydantic_title(name):
        return schema_title
    return humanize(name)
