"""Classify eval: accuracy and macro-F1 per preset on the project's labelled sets, with and
without the content-free calibration (so its effect is measured, not assumed)."""

from __future__ import annotations

import json
from typing import Any

from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs

DATASET = "classify.json"
CI_ITEMS = 8  # per preset; the sets are ordered so that prefixes are balanced


def macro_f1(gold: list[str], predicted: list[str], labels: list[str]) -> float:
    """Unweighted mean of per-label F1 over `labels` (a label never predicted nor present scores 0)."""
    scores = []
    for label in labels:
        tp = sum(g == p == label for g, p in zip(gold, predicted))
        fp = sum(p == label != g for g, p in zip(gold, predicted))
        fn = sum(g == label != p for g, p in zip(gold, predicted))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def _job(preset: str, items: list[dict], calibrate: bool) -> tuple[str, dict, dict]:
    job_input: dict[str, Any]
    if preset == "nli":
        data = "\n".join(json.dumps({"text": i["text"], "hypothesis": i["pair"]}) for i in items)
        job_input = {"preset": preset, "data": data, "data_format": "jsonl"}
    else:
        job_input = {"preset": preset, "texts": [i["text"] for i in items]}
    return "classify", {**job_input, "calibrate": calibrate}, {}


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    """`limit` keeps the first items of each preset (a quick run); else the CI subset or `full`."""
    from vireo.apps.classify_presets import PRESETS

    size = limit or (None if full else CI_ITEMS)
    sets = {name: items[:size] for name, items in load(DATASET)["sets"].items()}
    plan = [(name, calibrate) for name in sets for calibrate in (True, False)]
    outputs = run_jobs(runner, [_job(name, sets[name], calibrate) for name, calibrate in plan], concurrency)
    metrics, items = {}, []
    for (name, calibrate), out in zip(plan, outputs):
        gold = [i["label"] for i in sets[name]]
        predicted = [r["label"] for r in out.get("results", [])] or [""] * len(gold)
        key = f"{name}{'' if calibrate else ' (uncalibrated)'}"
        metrics[key] = {
            "accuracy": round(sum(g == p for g, p in zip(gold, predicted)) / len(gold), 3),
            "macro_f1": round(macro_f1(gold, predicted, list(PRESETS[name].labels)), 3),
            "items": len(gold),
            "error": out.get("error"),
        }
        if calibrate:
            items += [
                {"preset": name, "text": i["text"], "gold": g, "predicted": p}
                for i, g, p in zip(sets[name], gold, predicted)
            ]
    calibrated = [m for k, m in metrics.items() if "uncalibrated" not in k]
    metrics["mean"] = {
        "accuracy": round(sum(m["accuracy"] for m in calibrated) / len(calibrated), 3),
        "macro_f1": round(sum(m["macro_f1"] for m in calibrated) / len(calibrated), 3),
    }
    total = sum(len(v) for v in sets.values())
    return {"dataset": describe(DATASET, total, full), "metrics": metrics, "items": items}
