"""Chat eval: a real tiny run (JSON shape, judge scores) and its checks on hand-made replies."""

import pytest

from vireo.tools.evals.chat_eval import judge_items, score_reply
from vireo.tools.evals.cli_runs import evaluate_one
from vireo.tools.evals.configs import EvalConfig
from vireo.tools.evals.datasets import load

ITEMS = {item["id"]: item for item in load("chat.json")["items"]}


@pytest.fixture(scope="module")
def tiny_run():
    return evaluate_one("chat", EvalConfig(), limit=2)


def test_a_run_reports_check_pass_rates_and_each_reply(tiny_run):
    assert tiny_run["app"] == "chat" and tiny_run["dataset"]["subset"] == "first 2"
    metrics = tiny_run["metrics"]
    assert metrics["failed"] == 0 and 0 <= metrics["check_pass_rate"]["all"] <= 1
    first = tiny_run["items"][0]
    assert first["id"] == "capital" and first["reply"] and set(first["checks"]) == {"mentions", "max_words"}


def test_a_run_gets_single_answer_scores_from_the_named_judge(tiny_run):
    judge = tiny_run["judge"]
    assert judge["judge"]["model"] == "smollm2-135m" and judge["mode"] == "score" and judge["judged"] == 2
    assert 1 <= judge["mean_score"] <= 10 and set(judge["scores"]) == {"capital", "three_fruits"}


def test_a_reply_with_the_fact_in_few_words_passes():
    assert score_reply(ITEMS["capital"], {"text": "Paris."})["checks"] == {"mentions": True, "max_words": True}


def test_a_long_or_wrong_reply_fails_the_matching_check():
    long = score_reply(ITEMS["capital"], {"text": "Paris " + "and more " * 20})["checks"]
    assert long == {"mentions": True, "max_words": False}
    assert score_reply(ITEMS["arithmetic"], {"text": "54"})["checks"]["mentions"] is False


def test_a_failed_job_passes_none_of_its_checks():
    detail = score_reply(ITEMS["json_person"], {"error": "JobFailed: too long"})
    assert detail["checks"] == {"json_keys": False, "mentions": False} and detail["reply"] == ""


def test_the_judge_sees_the_whole_conversation_and_the_reference():
    item = judge_items([score_reply(ITEMS["remember_name"], {"text": "Marta"})])[0]
    assert "User: Hi, my name is Marta" in item["question"] and "Assistant: Nice to meet you" in item["question"]
    assert item["answer"] == "Marta" and item["reference"] == "Your name is Marta."
