"""Render the quality results under benchmarks/results/quality/ as a Markdown table.

`python -m vireo.evals.report` prints the table that benchmarks/README.md's Quality section holds.
"""

from __future__ import annotations

import json
from pathlib import Path

from vireo.evals.harness import RESULTS

HEADLINES = {  # which metrics make the table, per app
    "code": lambda m: {"pass@1": m["pass@1"], "passed": f"{m['passed']}/{m['problems']}"},
    "classify": lambda m: {k: f"acc {v['accuracy']}, F1 {v['macro_f1']}" for k, v in m.items()},
    "translate": lambda m: {k: f"chrF {v['chrf']}, BLEU {v['bleu']}" for k, v in m.items()},
    "summarize": lambda m: {k: m[k] for k in ("rouge1", "rouge2", "rougeL", "failed")},
}


def rows(folder: Path = RESULTS) -> list[list[str]]:
    table = []
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text())
        headline = HEADLINES.get(result.get("app"))
        if headline is None:
            continue
        dataset = result["dataset"]
        for metric, value in headline(result["metrics"]).items():
            table.append([result["app"], result.get("model") or "", result.get("backend") or "", metric, str(value),
                          f"{dataset['items']} ({dataset['subset']})", result["date"][:10], path.name])
    return table


def markdown(folder: Path = RESULTS) -> str:
    header = ["app", "model", "backend", "metric", "value", "items", "date", "file"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(folder)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
