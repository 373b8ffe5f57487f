"""Read many texts from CSV or JSONL content, and write a result table back as CSV."""

from __future__ import annotations

import csv
import io
import json

from vireo.apps.base import AppInputError


def read_rows(
    data: str, fmt: str, text_field: str, pair_field: str | None = None, limit: int = 1000
) -> list[tuple[str, str | None]]:
    """(text, pair) per row of `data`; AppInputError naming the line or column on bad input."""
    rows = _read_csv(data, text_field, pair_field) if fmt == "csv" else _read_jsonl(data, text_field, pair_field)
    if not rows:
        raise AppInputError("data has no rows")
    if len(rows) > limit:
        raise AppInputError(f"data has {len(rows)} rows; at most {limit} per job")
    return rows


def _read_csv(data: str, text_field: str, pair_field: str | None) -> list[tuple[str, str | None]]:
    reader = csv.DictReader(io.StringIO(data.strip()))
    columns = reader.fieldnames or []
    for field in [text_field] + ([pair_field] if pair_field else []):
        if field not in columns:
            raise AppInputError(f"CSV has no column {field!r}; its columns are: {', '.join(columns)}")
    return [(row[text_field] or "", row[pair_field] if pair_field else None) for row in reader]


def _read_jsonl(data: str, text_field: str, pair_field: str | None) -> list[tuple[str, str | None]]:
    rows: list[tuple[str, str | None]] = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AppInputError(f"JSONL line {number} is not valid JSON: {exc.msg}") from None
        if isinstance(item, str) and not pair_field:
            rows.append((item, None))
            continue
        if not isinstance(item, dict) or text_field not in item:
            raise AppInputError(f"JSONL line {number} has no field {text_field!r}")
        if pair_field and pair_field not in item:
            raise AppInputError(f"JSONL line {number} has no field {pair_field!r}")
        rows.append((str(item[text_field]), str(item[pair_field]) if pair_field else None))
    return rows


def to_csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
