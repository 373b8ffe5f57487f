"""The judge: structured verdicts by label scoring, both pairwise orders, batch tables."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from vireo.apps.base import AppInputError, LocalContext
from vireo.apps.judge import JudgeApp, JudgeInput, parse_items

PARIS = {
    "question": "What is the capital of France?",
    "right": "The capital of France is Paris.",
    "wrong": "The capital of France is Berlin.",
}


async def test_likelihood_judge_prefers_the_correct_answer_in_either_position(judge_engine):
    app = JudgeApp()
    items = [
        {"id": "right-first", "question": PARIS["question"], "answer_a": PARIS["right"], "answer_b": PARIS["wrong"]},
        {"id": "right-second", "question": PARIS["question"], "answer_a": PARIS["wrong"], "answer_b": PARIS["right"]},
    ]
    out = await app.run(
        LocalContext(judge_engine), app.Input(mode="pairwise", method="likelihood", items=items, rationale=False)
    )
    assert [v.verdict for v in out.verdicts] == ["A", "B"]
    assert out.summary.wins_a == 1 and out.summary.wins_b == 1


async def test_label_pairwise_runs_both_orders_and_keeps_only_agreeing_verdicts(judge_engine):
    app = JudgeApp()
    ctx = LocalContext(judge_engine)
    item = {"question": PARIS["question"], "answer_a": PARIS["right"], "answer_b": PARIS["wrong"]}
    out = await app.run(ctx, app.Input(mode="pairwise", items=[item], max_rationale_tokens=24))
    verdict = out.verdicts[0]
    assert set(verdict.orders) == {"ab", "ba"}
    agree = verdict.orders["ab"] == verdict.orders["ba"]
    assert verdict.consistent is agree
    assert verdict.verdict == (verdict.orders["ab"] if agree else "inconsistent")
    assert abs(sum(verdict.probabilities.values()) - 1) < 1e-3
    assert verdict.rationale and verdict.rationale in "".join(ctx.emitted)  # rationale streamed


async def test_score_mode_gives_a_label_from_one_to_ten_and_a_table(judge_engine):
    app = JudgeApp()
    jsonl = "\n".join(
        json.dumps({"id": f"job-{n}", "question": "What is 2 + 2?", "answer": a}) for n, a in enumerate(["4", "5"])
    )
    out = await app.run(LocalContext(judge_engine), app.Input(mode="score", jsonl=jsonl, rationale=False))
    assert [v.id for v in out.verdicts] == ["job-0", "job-1"]
    assert all(v.verdict in [str(n) for n in range(1, 11)] and v.score == int(v.verdict) for v in out.verdicts)
    assert out.summary.mean_score == sum(v.score for v in out.verdicts) / 2
    assert "| job-1 |" in out.table


def test_items_missing_a_field_for_the_mode_are_refused_clearly():
    with pytest.raises(AppInputError, match="item 1: mode pass_fail needs reference"):
        parse_items(JudgeInput(mode="pass_fail", items=[{"question": "q", "answer": "a"}]))
    with pytest.raises(AppInputError, match="jsonl line 2 is not JSON"):
        parse_items(JudgeInput(jsonl='{"question": "q", "answer": "a"}\n{oops'))
    with pytest.raises(ValidationError, match="use it with mode 'pairwise'"):
        JudgeInput(mode="score", method="likelihood", items=[{"question": "q", "answer": "a"}])
