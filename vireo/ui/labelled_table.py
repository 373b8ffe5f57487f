"""A batch the classify app labelled, as the file the user uploaded plus its labels (no Streamlit here).

The app returns one result per row, by position (`index`), with the text clipped; the page joins them
back onto the uploaded rows, so the download keeps every column of the original file."""

from __future__ import annotations

import csv
import io
import json

ADDED = ("label", "labels", "probability")


def csv_columns(data: str) -> list[str]:
    """The header of CSV text ([] when it has none)."""
    reader = csv.reader(io.StringIO(data.strip()))
    return next(reader, [])


def jsonl_fields(data: str) -> list[str]:
    """The fields of the first JSON object line ([] when there is none)."""
    for line in data.splitlines():
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                return []
            return list(item) if isinstance(item, dict) else []
    return []


def _additions(result: dict) -> dict:
    return {
        "label": result["label"],
        "labels": ";".join(result.get("labels") or []),
        "probability": result["probability"],
    }


def labelled_csv(data: str, results: list[dict]) -> str:
    """The uploaded CSV with the label, every assigned label and the label's probability on each row."""
    reader = csv.DictReader(io.StringIO(data.strip()))
    columns = list(reader.fieldnames or [])
    by_index = {r["index"]: r for r in results}
    out = io.StringIO()
    writer = csv.DictWriter(out, [*columns, *(c for c in ADDED if c not in columns)], lineterminator="\n")
    writer.writeheader()
    for number, row in enumerate(reader):
        found = by_index.get(number)
        writer.writerow({**row, **(_additions(found) if found else {})})
    return out.getvalue()


def labelled_jsonl(data: str, results: list[dict]) -> str:
    """The uploaded JSON lines with the same three fields added to each object."""
    by_index = {r["index"]: r for r in results}
    lines, number = [], 0
    for line in data.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        found = by_index.get(number)
        if found:
            item = {**item, **_additions(found)} if isinstance(item, dict) else {"text": item, **_additions(found)}
        lines.append(json.dumps(item, ensure_ascii=False))
        number += 1
    return "\n".join(lines) + "\n"


def label_counts(results: list[dict], labels: list[str]) -> list[dict]:
    """Rows of (label, texts) for a bar chart, in the label set's order (labels no text got included)."""
    counts = {name: 0 for name in labels}
    for result in results:
        for name in result.get("labels") or [result["label"]]:
            counts[name] = counts.get(name, 0) + 1
    return [{"label": name, "texts": count} for name, count in counts.items()]
