"""RAG eval: answers (exact match, token F1), retrieval recall@k, citation correctness and
abstention, on the project's small fictional document set (`rag_qa.json`)."""

from __future__ import annotations

import re
import string
from collections import Counter
from statistics import mean

from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs

DATASET = "rag_qa.json"
COLLECTION = "eval-rag-qa"
CI_ANSWERABLE, CI_UNANSWERABLE = 8, 4
IDK = "I don't know from these documents."
K = 3


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, articles or citation marks, single spaces."""
    text = re.sub(r"\[\d+\]", " ", text.lower())
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def pick(questions: list[dict], full: bool) -> list[dict]:
    if full:
        return questions
    answerable = [q for q in questions if q["answer"] is not None][:CI_ANSWERABLE]
    unanswerable = [q for q in questions if q["answer"] is None][:CI_UNANSWERABLE]
    return answerable + unanswerable


def score_item(item: dict, out: dict) -> dict:
    answer = out.get("answer", "")
    passages, citations = out.get("passages", []), out.get("citations", [])
    gold = item["answer"]
    detail = {
        "question": item["question"],
        "reference": gold,
        "answer": answer,
        "error": out.get("error"),
        "abstained": bool(out.get("abstained")),
        "abstain_reason": out.get("abstain_reason"),
        "checks": out.get("checks"),
        "retrieved": [p["source"] for p in passages],
        "cited": [c["source"] for c in citations],
    }
    if gold is None:
        return detail
    detail.update(
        exact_match=float(normalize(answer) == normalize(gold)),
        contains_answer=float(normalize(gold) in normalize(answer)),
        token_f1=round(token_f1(answer, gold), 4),
        retrieval_hit=float(item["source"] in detail["retrieved"]),
        citation_correct=float(bool(citations) and citations[0]["source"] == item["source"]),
    )
    return detail


def summarize(details: list[dict]) -> dict:
    answerable = [d for d in details if d["reference"] is not None]
    unanswerable = [d for d in details if d["reference"] is None]
    answered = [d for d in answerable if not d["abstained"]]
    rate = lambda ds, key: round(mean(d[key] for d in ds), 4) if ds else None  # noqa: E731

    def margins(ds):
        return [
            d["checks"]["support_margin"]
            for d in ds
            if d.get("checks") and d["checks"].get("support_margin") is not None
        ]

    return {
        "exact_match": rate(answerable, "exact_match"),
        "contains_answer": rate(answerable, "contains_answer"),
        "token_f1": rate(answerable, "token_f1"),
        f"retrieval_recall_at_{K}": rate(answerable, "retrieval_hit"),
        "citation_correct_of_answered": rate(answered, "citation_correct"),
        "abstain_rate_unanswerable": round(mean(d["abstained"] for d in unanswerable), 4) if unanswerable else None,
        "false_abstain_rate_answerable": round(mean(d["abstained"] for d in answerable), 4) if answerable else None,
        "mean_support_margin_answerable": round(mean(margins(answerable)), 3) if margins(answerable) else None,
        "mean_support_margin_unanswerable": round(mean(margins(unanswerable)), 3) if margins(unanswerable) else None,
        "failed": sum(d["error"] is not None for d in details),
    }


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    data = load(DATASET)
    runner("rag_ingest", {"collection": COLLECTION, "documents": data["documents"]}, {})  # idempotent
    items = pick(data["questions"], full)[:limit]
    # the LLM support score is recorded for the report but does not gate (min margin -1e9)
    jobs = [
        (
            "rag",
            {
                "collection": COLLECTION,
                "question": q["question"],
                "k": K,
                "support_check": True,
                "min_support_margin": -1e9,
            },
            {"temperature": 0.0},
        )
        for q in items
    ]
    outputs = run_jobs(runner, jobs, concurrency)
    details = [score_item(item, out) for item, out in zip(items, outputs)]
    return {
        "dataset": describe(DATASET, len(items), full),
        "metrics": summarize(details),
        "items": details,
        "settings": {"k": K, "min_similarity": 0.35, "min_grounding": 0.5, "support_check": "recorded only"},
    }


def run_eval(app_name: str, runner, full: bool = False) -> dict:
    """The brief's entry point; `vireo.tools.evals.harness.run_eval('rag', ...)` adds date and machine."""
    return evaluate(runner, full=full, concurrency=4)
