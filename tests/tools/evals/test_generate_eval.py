"""Generate eval: a real tiny run (JSON shape, judge scores) and its checks on hand-made variants."""

import pytest

from vireo.tools.evals.cli_runs import evaluate_one
from vireo.tools.evals.configs import EvalConfig
from vireo.tools.evals.datasets import load
from vireo.tools.evals.generate_eval import VARIANTS, judge_items, score_output, word_band_for

ITEMS = {item["id"]: item for item in load("generate.json")["items"]}
KETTLE = ITEMS["ad_kettle"]  # short: about 60 words, so 30-90 pass


def variants(*texts: str) -> dict:
    return {"brief": "Write advertising copy for the Brewmate kettle.", "variants": [{"text": t} for t in texts]}


@pytest.fixture(scope="module")
def tiny_run():
    return evaluate_one("generate", EvalConfig(), limit=1)


def test_a_run_returns_the_variants_with_their_checks(tiny_run):
    assert tiny_run["app"] == "generate" and tiny_run["metrics"]["failed"] == 0
    item = tiny_run["items"][0]
    assert item["id"] == "ad_kettle" and len(item["variants"]) == VARIANTS == len(item["word_counts"])
    assert set(item["checks"]) == {"mentions", "word_band", "n_returned", "distinct"} and item["checks"]["n_returned"]
    assert "Brewmate" in item["brief"]


def test_a_run_gets_single_answer_scores_from_the_named_judge(tiny_run):
    judge = tiny_run["judge"]
    assert judge["judge"]["model"] == "smollm2-135m" and judge["judged"] == 1 and 1 <= judge["mean_score"] <= 10


def test_the_length_band_follows_the_requested_length():
    assert word_band_for("short") == [30, 90] and word_band_for("medium") == [75, 225]


def test_two_distinct_variants_that_name_the_product_within_the_band_pass_everything():
    checks = score_output(KETTLE, variants("Brewmate boils fast. " * 12, "Meet Brewmate, your kettle. " * 9))["checks"]
    assert checks == {"mentions": True, "word_band": True, "n_returned": True, "distinct": True}


def test_one_variant_missing_the_product_or_too_short_fails_that_check_for_the_item():
    checks = score_output(KETTLE, variants("Brewmate boils fast. " * 12, "A kettle."))["checks"]
    assert checks["mentions"] is False and checks["word_band"] is False and checks["distinct"] is True


def test_identical_or_missing_variants_fail_distinct_and_n_returned():
    same = score_output(KETTLE, variants("Brewmate boils fast. " * 12, "Brewmate boils fast. " * 12))["checks"]
    assert same["distinct"] is False and same["n_returned"] is True
    one = score_output(KETTLE, variants("Brewmate boils fast. " * 12))["checks"]
    assert one["n_returned"] is False and one["distinct"] is False


def test_the_judge_grades_the_first_variant_against_the_brief_without_a_reference():
    detail = score_output(KETTLE, variants("first", "second"))
    assert judge_items([detail]) == [
        {"id": "ad_kettle", "question": detail["brief"], "answer": "first", "reference": None}
    ]
