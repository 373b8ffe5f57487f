"""Eval datasets: JSON files under `vireo/tools/evals/data/`, each with a description of its origin."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def load(name: str) -> dict:
    """The parsed dataset file `name` (e.g. 'summarize.json')."""
    data = json.loads((DATA / name).read_text(encoding="utf-8"))
    if "description" not in data:
        raise ValueError(f"dataset {name} lacks a description of where it comes from")
    return data


def describe(name: str, items: int, full: bool) -> dict:
    """How a result names its dataset: file, origin, size and whether it was the CI subset."""
    return {
        "name": name,
        "description": load(name)["description"] if name.endswith(".json") else name,
        "items": items,
        "subset": "full" if full else "ci",
    }
