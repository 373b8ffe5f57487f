"""Judge eval: agreement with human labels on the project's answer pairs, and the swap-consistency
rate of label verdicts, for both pairwise methods (labels, likelihood)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs

DATASET = "judge_pairs.json"
CI_ITEMS = 16  # the whole set: its ties and explanation pairs are the hard part
METHODS = ("labels", "likelihood")


def agreement(items: list[dict], verdicts: list[dict]) -> dict:
    """Share of verdicts equal to the human label; 'inconsistent' counts as a disagreement."""
    hits = [v["verdict"] == item["label"] for item, v in zip(items, verdicts)]
    decided = [v for v in verdicts if v["verdict"] != "inconsistent"]
    return {
        "agreement": round(sum(hits) / len(items), 4),
        "agreement_when_consistent": round(
            sum(h for h, v in zip(hits, verdicts) if v["verdict"] != "inconsistent") / len(decided), 4
        )
        if decided
        else None,
        "verdicts": dict(Counter(v["verdict"] for v in verdicts)),
    }


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    items = load(DATASET)["items"]
    items = (items if full else items[:CI_ITEMS])[:limit]
    judge_items = [
        {"id": str(n), "question": i["question"], "answer_a": i["answer_a"], "answer_b": i["answer_b"]}
        for n, i in enumerate(items)
    ]
    jobs = [
        (
            "judge",
            {"mode": "pairwise", "method": method, "items": judge_items, "rationale": False},
            {"temperature": 0.0},
        )
        for method in METHODS
    ]
    outputs = run_jobs(runner, jobs, concurrency)
    metrics: dict[str, Any] = {}  # per method, and the always-A baseline
    details: dict[str, list[dict]] = {}
    for method, out in zip(METHODS, outputs):
        if "error" in out:
            metrics[method] = {"error": out["error"]}
            continue
        verdicts = out["verdicts"]
        metrics[method] = {**agreement(items, verdicts), "consistency_rate": out["summary"]["consistency_rate"]}
        details[method] = [
            {
                "question": i["question"],
                "label": i["label"],
                "verdict": v["verdict"],
                "orders": v.get("orders"),
                "probabilities": v["probabilities"],
            }
            for i, v in zip(items, verdicts)
        ]
    labels = Counter(i["label"] for i in items)
    metrics["always_A_baseline"] = round(labels["A"] / len(items), 4)
    return {"dataset": describe(DATASET, len(items), full), "metrics": metrics, "items": details}


def run_eval(app_name: str, runner, full: bool = False) -> dict:
    """The brief's entry point; `vireo.tools.evals.harness.run_eval('judge', ...)` adds date and machine."""
    return evaluate(runner, full=full, concurrency=2)
