"""The judge app on open-ended outputs (summaries, chat replies, generated text), next to the
reference metrics: one configuration gets single-answer scores (1-10); a base/variant comparison
gets pairwise verdicts, label verdicts in both orders (kept only when the orders agree) and the
likelihood method, which has no order to be biased by.

An open-ended eval module offers `judge_items(details) -> [{"id", "question", "answer", "reference"}]`;
items whose job failed are left out and counted. The judge is the base configuration's model, and
the result says so: a 135M judge is weak, and its numbers are reported as they come.
"""

from __future__ import annotations

from statistics import mean

from vireo.tools.evals.configs import EvalConfig
from vireo.tools.evals.runners import Runner

GREEDY = {"temperature": 0.0}
PAIRWISE_METHODS = ("labels", "likelihood")


def judge_identity(config: EvalConfig, methods: tuple[str, ...]) -> dict:
    return {
        "model": config.model,
        "backend": config.backend,
        "quant": config.as_dict()["quant"],
        "app": "judge",
        "methods": list(methods),
    }


def _answered(items: list[dict]) -> list[dict]:
    return [item for item in items if (item.get("answer") or "").strip()]


def single_answer_scores(runner: Runner, items: list[dict], judge: EvalConfig) -> dict:
    """Mean 1-10 score (and the probability-weighted score) of each answer, graded alone."""
    answered = _answered(items)
    report = {
        "judge": judge_identity(judge, ("labels",)),
        "mode": "score",
        "judged": len(answered),
        "not_judged": len(items) - len(answered),
    }
    if not answered:
        return report
    out = runner("judge", {"mode": "score", "items": answered, "rationale": False}, GREEDY)
    verdicts = out["verdicts"]
    return {
        **report,
        "mean_score": out["summary"]["mean_score"],
        "mean_expected_score": round(mean(v["expected_score"] for v in verdicts), 3),
        "scores": {v["id"]: v["score"] for v in verdicts},
    }


def _pairs(base_items: list[dict], variant_items: list[dict]) -> list[dict]:
    by_id = {item["id"]: item for item in _answered(variant_items)}
    return [
        {
            "id": base["id"],
            "question": base["question"],
            "reference": base.get("reference"),
            "answer_a": base["answer"],
            "answer_b": by_id[base["id"]]["answer"],
        }
        for base in _answered(base_items)
        if base["id"] in by_id
    ]


def _pairwise_summary(out: dict) -> dict:
    summary = out["summary"]
    return {
        "base_wins": summary["wins_a"],
        "variant_wins": summary["wins_b"],
        "ties": summary["ties"],
        "inconsistent": summary["inconsistent"],
        "consistency_rate": summary["consistency_rate"],
        "verdicts": {
            v["id"]: {
                "verdict": {"A": "base", "B": "variant"}.get(v["verdict"], v["verdict"]),
                "orders": v.get("orders"),
                "probabilities": v["probabilities"],
            }
            for v in out["verdicts"]
        },
    }


def pairwise(runner: Runner, base_items: list[dict], variant_items: list[dict], judge: EvalConfig) -> dict:
    """Base (answer A) against variant (answer B) on the same inputs, by each pairwise method."""
    pairs = _pairs(base_items, variant_items)
    report = {
        "judge": judge_identity(judge, PAIRWISE_METHODS),
        "mode": "pairwise",
        "judged": len(pairs),
        "not_judged": len(base_items) - len(pairs),
        "identical_outputs": sum(p["answer_a"].strip() == p["answer_b"].strip() for p in pairs),
    }
    if not pairs:
        return report
    for method in PAIRWISE_METHODS:
        out = runner("judge", {"mode": "pairwise", "method": method, "items": pairs, "rationale": False}, GREEDY)
        report[method] = _pairwise_summary(out)
    return report
