"""Judge: grade one answer (a 1-10 score, or pass/fail against a reference), compare two answers side by
side in an A/B arena (verdict, whether both orders agreed, rationale), or grade a JSONL batch with a
summary chart."""

from __future__ import annotations

import json
from collections import Counter

import streamlit as st

from vireo.ui.charts import BAR_COLOR, label_bars
from vireo.ui.forms import field_help
from vireo.ui.job_panel import job_panel, start_job
from vireo.ui.page_plugins import AppPage
from vireo.ui.safe_markdown import escape_text, safe_markdown

MODES = {"score": "Score 1-10", "pass_fail": "Pass / fail against a reference", "pairwise": "A/B (pairwise)"}
METHODS = {"labels": "The model compares them (both orders)", "likelihood": "Each answer's likelihood"}
VERDICT_WORDS = {"A": "Answer A is better", "B": "Answer B is better", "tie": "A tie", "inconsistent": "Undecided"}


def _rubric(schema: dict, key: str) -> str:
    return st.text_input(
        "Criteria (optional)", key=key, placeholder="The default rubric of the mode", help=field_help(schema, "rubric")
    ).strip()


def _probability_bars(probabilities: dict[str, float], order: list[str] | None = None) -> None:
    labels = order or list(probabilities)
    label_bars(
        [{"verdict": label, "probability": probabilities.get(label, 0.0)} for label in labels],
        "verdict",
        "probability",
        "How likely each verdict was",
        base_height=70,
    )


def show_grade(result: dict) -> None:
    verdict = (result.get("verdicts") or [{}])[0]
    if result.get("mode") == "score":
        expected = verdict.get("expected_score")
        st.metric("Score", f"{verdict.get('verdict')} / 10", help="The most likely grade")
        if expected is not None:
            st.caption(f"Probability-weighted score: {expected:.2f}")
        _probability_bars(verdict.get("probabilities") or {}, [str(n) for n in range(10, 0, -1)])
    else:
        passed = verdict.get("verdict") == "pass"
        (st.success if passed else st.error)("**Pass**" if passed else "**Fail**")
        _probability_bars(verdict.get("probabilities") or {})
    _rationale(verdict)


def _rationale(verdict: dict) -> None:
    if verdict.get("rationale"):
        st.markdown("**Rationale**")
        with st.container(border=True):
            st.markdown(safe_markdown(verdict["rationale"]))


def show_arena(result: dict) -> None:
    verdict = (result.get("verdicts") or [{}])[0]
    word = VERDICT_WORDS.get(verdict.get("verdict"), verdict.get("verdict"))
    st.markdown(f"### {escape_text(str(word))}")
    orders = verdict.get("orders")
    if orders:
        agree = verdict.get("consistent")
        line = f"As given: **{orders.get('ab')}** · answers swapped: **{orders.get('ba')}** → "
        line += "both orders agree" if agree else "the orders disagree, so no winner is declared"
        (st.success if agree else st.warning)(line)
    if verdict.get("likelihoods"):
        lik = verdict["likelihoods"]
        st.caption(f"Mean log-probability per token: A {lik.get('A'):.3f} · B {lik.get('B'):.3f}")
    _probability_bars(verdict.get("probabilities") or {})
    _rationale(verdict)


def summary_rows(result: dict) -> list[dict]:
    """What a batch's chart draws: the score distribution, pass/fail counts, or A/B/tie/undecided counts."""
    verdicts = result.get("verdicts") or []
    counts = Counter(v.get("verdict") for v in verdicts)
    mode = result.get("mode")
    if mode == "score":
        return [{"verdict": str(n), "items": counts.get(str(n), 0)} for n in range(1, 11)]
    order = ["pass", "fail"] if mode == "pass_fail" else ["A", "B", "tie", "inconsistent"]
    return [{"verdict": VERDICT_WORDS.get(v, v) if mode == "pairwise" else v, "items": counts.get(v, 0)} for v in order]


def show_batch(result: dict) -> None:
    summary = result.get("summary") or {}
    mode = result.get("mode")
    cols = st.columns(4)
    cols[0].metric("Items", summary.get("items", 0))
    if mode == "score":
        cols[1].metric("Mean score", f"{summary.get('mean_score', 0):.2f}")
    elif mode == "pass_fail":
        cols[1].metric("Pass rate", f"{summary.get('pass_rate', 0):.0%}")
    else:
        cols[1].metric("A wins", summary.get("wins_a", 0))
        cols[2].metric("B wins", summary.get("wins_b", 0))
        cols[3].metric("Both orders agree", f"{summary.get('consistency_rate', 0):.0%}")
    rows = summary_rows(result)
    scores = mode == "score"  # ten grades read left to right; verdicts read best as rows of labelled bars
    st.bar_chart(
        rows,
        x="verdict",
        y="items",
        horizontal=not scores,
        sort=False,
        color=BAR_COLOR,
        x_label="score" if scores else "",
        y_label="items",
        height=260 if scores else 70 + 34 * len(rows),
        alt="How many items got each verdict",
    )
    rows = [
        {
            "#": v.get("index"),
            "id": v.get("id") or "",
            "verdict": v.get("verdict"),
            **({"orders (AB / BA)": f"{v['orders']['ab']} / {v['orders']['ba']}"} if v.get("orders") else {}),
            "rationale": v.get("rationale") or "",
        }
        for v in result.get("verdicts") or []
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.download_button(
        "Download the verdicts (JSONL)",
        "\n".join(json.dumps(v, ensure_ascii=False) for v in result.get("verdicts") or []) + "\n",
        file_name="verdicts.jsonl",
        key="judge.batch.download",
        icon=":material/download:",
    )


def _grade_tab(schema: dict) -> None:
    mode = st.radio("Grade as", ["score", "pass_fail"], format_func=MODES.get, horizontal=True, key="judge.one.mode")
    question = st.text_area("Question or task", key="judge.one.question", height=80)
    answer = st.text_area("Answer to grade", key="judge.one.answer", height=100)
    reference = st.text_area(
        "Reference answer" + (" (optional)" if mode == "score" else ""), key="judge.one.reference", height=80
    )
    rubric = _rubric(schema, "judge.one.rubric")
    if st.button("Grade", type="primary", key="judge.one.go"):
        if not (question.strip() and answer.strip()) or (mode == "pass_fail" and not reference.strip()):
            st.warning("Give the question and the answer" + (", and a reference." if mode == "pass_fail" else "."))
        else:
            item = {"question": question, "answer": answer, **({"reference": reference} if reference.strip() else {})}
            start_job("judge.one", "judge", {"mode": mode, "items": [item], **({"rubric": rubric} if rubric else {})})
    job_panel("judge.one", result_view=show_grade)


def _arena_tab(schema: dict) -> None:
    question = st.text_area("Question or task", key="judge.ab.question", height=80)
    cols = st.columns(2)
    answer_a = cols[0].text_area("Answer A", key="judge.ab.a", height=140)
    answer_b = cols[1].text_area("Answer B", key="judge.ab.b", height=140)
    cols = st.columns(2)
    method = cols[0].radio(
        "How to compare",
        list(METHODS),
        format_func=METHODS.get,
        key="judge.ab.method",
        help=field_help(schema, "method"),
    )
    with cols[1]:
        reference = st.text_input("Reference answer (optional)", key="judge.ab.reference")
        rubric = _rubric(schema, "judge.ab.rubric")
    if st.button("Compare", type="primary", key="judge.ab.go"):
        if not (question.strip() and answer_a.strip() and answer_b.strip()):
            st.warning("Give the question and both answers.")
        else:
            item = {"question": question, "answer_a": answer_a, "answer_b": answer_b}
            if reference.strip():
                item["reference"] = reference
            job = {"mode": "pairwise", "method": method, "items": [item], **({"rubric": rubric} if rubric else {})}
            start_job("judge.ab", "judge", job)
    job_panel("judge.ab", result_view=show_arena)


def _batch_tab(schema: dict) -> None:
    mode = st.radio("Grade as", list(MODES), format_func=MODES.get, horizontal=True, key="judge.batch.mode")
    need = {
        "score": "question, answer",
        "pass_fail": "question, answer, reference",
        "pairwise": "question, answer_a, answer_b",
    }
    st.caption(f"One JSON object per line with {need[mode]} (and optionally id).")
    upload = st.file_uploader("Items (JSONL)", type=["jsonl", "json", "txt"], key="judge.batch.file")
    rationale = st.toggle("Write a rationale for each item", value=False, key="judge.batch.rationale")
    rubric = _rubric(schema, "judge.batch.rubric")
    if st.button("Grade all", type="primary", key="judge.batch.go"):
        if upload is None:
            st.warning("Upload the items first.")
        else:
            job = {
                "mode": mode,
                "jsonl": upload.getvalue().decode("utf-8-sig", errors="replace"),
                "rationale": rationale,
            }
            start_job("judge.batch", "judge", {**job, **({"rubric": rubric} if rubric else {})})
    job_panel("judge.batch", result_view=show_batch)


def render(client, app: dict) -> None:
    st.title(app.get("title") or "Judge")
    st.caption(app.get("description", ""))
    schema = app.get("input_schema") or {}
    one, arena, batch = st.tabs(["Grade an answer", "A/B arena", "Batch"])
    with one:
        _grade_tab(schema)
    with arena:
        _arena_tab(schema)
    with batch:
        _batch_tab(schema)


PAGE = AppPage(render=render, icon=":material/gavel:", order=60)
