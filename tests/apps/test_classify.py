"""Classify: label scoring puts unmistakable texts in the right class; batch tables; clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vireo.apps.base import AppInputError
from vireo.apps.classify import ClassifyApp

APP = ClassifyApp()


async def test_sentiment_preset_recognises_an_unmistakable_positive_text(run_app):
    out, ctx = await run_app(
        APP, {"preset": "sentiment", "text": "I absolutely love this, it is wonderful and makes me so happy!"}
    )
    assert out.label == "positive"
    assert abs(sum(s.probability for s in out.scores) - 1) < 1e-3
    assert ctx.progress_log[-1][0] == 1.0


async def test_batch_mode_returns_a_table_with_counts_and_examples(run_app):
    texts = [
        "Thank you, this is the best day of my life, I am so happy!",
        "This is awful, I hate it, the worst purchase ever.",
    ]
    out, _ = await run_app(APP, {"preset": "sentiment", "texts": texts, "examples_per_label": 1})
    assert [r.label for r in out.results] == ["positive", "negative"]
    assert sum(out.counts.values()) == 2
    assert out.csv.splitlines()[0] == "index,label,labels,probability,text" and len(out.csv.splitlines()) == 3
    assert out.examples["positive"] == [texts[0]]


async def test_multi_label_keeps_every_label_above_the_threshold(run_app):
    out, _ = await run_app(
        APP,
        {
            "labels": ["food", "travel", "money"],
            "multi_label": True,
            "threshold": 0.01,
            "text": "The flight to Rome cost 300 euros and the pasta there was great.",
        },
    )
    assert len(out.labels) >= 2 and out.labels[0] == out.label


async def test_a_csv_without_the_text_column_is_refused_with_its_columns(run_app):
    with pytest.raises(AppInputError, match="columns are: body"):
        await run_app(APP, {"preset": "spam", "data": "body\nhello there\n", "data_format": "csv"})


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"text": "hi", "preset": "weather"}, "preset"),
        ({"text": "hi", "labels": ["a", "A"]}, "distinct"),
        ({"text": "hi", "labels": ["a", "b"], "examples": [{"text": "x", "label": "c"}]}, "not in the label set"),
        ({"text": "hi"}, "labels or a preset"),
        ({"text": "   ", "preset": "spam"}, "empty"),
        ({"text": "a dog runs", "preset": "nli"}, "pair"),
    ],
)
def test_bad_label_sets_are_rejected_with_a_clear_message(bad, message):
    with pytest.raises(ValidationError, match=message):
        ClassifyApp.Input(**bad)
