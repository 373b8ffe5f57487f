"""Summarize eval: ROUGE-1/2/L F1 (rouge-score, stemmed) against the project's reference summaries."""

from __future__ import annotations

from statistics import mean

from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs

DATASET = "summarize.json"
CI_ITEMS = 4
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    from rouge_score import rouge_scorer

    items = load(DATASET)["items"]
    items = items[:limit] if limit else items if full else items[:CI_ITEMS]
    outputs = run_jobs(
        runner,
        [
            ("summarize", {"text": item["text"], "length": "short", "style": "paragraph"}, {"temperature": 0.0})
            for item in items
        ],
        concurrency,
    )
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    details = []
    for item, out in zip(items, outputs):
        summary = out.get("summary", "")
        scores = scorer.score(item["reference"], summary)
        details.append(
            {
                "id": item["id"],
                "summary": summary,
                "reference": item["reference"],
                "error": out.get("error"),
                **{k: round(scores[k].fmeasure, 4) for k in ROUGE_TYPES},
            }
        )
    metrics = {k: round(mean(d[k] for d in details), 4) for k in ROUGE_TYPES}
    metrics["failed"] = sum(d["error"] is not None for d in details)
    metrics["mean_summary_words"] = round(mean(len(d["summary"].split()) for d in details), 1)
    return {"dataset": describe(DATASET, len(items), full), "metrics": metrics, "items": details}


def judge_items(details: list[dict]) -> list[dict]:
    """What the judge grades: the summary of each document, against the reference summary."""
    texts = {item["id"]: item["text"] for item in load(DATASET)["items"]}
    return [
        {
            "id": d["id"],
            "question": f"Summarize this text in a short paragraph.\n\n{texts[d['id']]}",
            "answer": d["summary"],
            "reference": d["reference"],
        }
        for d in details
    ]
