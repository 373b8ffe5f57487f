"""Evals through the real job path: REST API + Celery worker (the `api` fixture), and the private
platform `vireo eval --runner rest` starts for a configuration."""

import pytest

from tests.conftest import API_KEY
from vireo.tools.evals.configs import EvalConfig
from vireo.tools.evals.harness import run_eval
from vireo.tools.evals.judging import single_answer_scores
from vireo.tools.evals.runners import open_runner, rest_runner
from vireo.tools.evals.summarize_eval import judge_items


def test_summarize_eval_runs_through_rest_and_gets_judge_scores(api, api_server):
    runner = rest_runner(api_server, API_KEY)
    result = run_eval("summarize", runner, limit=1)
    assert result["metrics"]["failed"] == 0 and result["items"][0]["summary"]
    scores = single_answer_scores(runner, judge_items(result["items"]), EvalConfig())
    assert scores["judge"]["model"] == "smollm2-135m" and scores["judged"] == 1
    assert 1 <= scores["mean_score"] <= 10


@pytest.mark.stack  # starts a private platform (Redis database, API, worker) of its own
def test_rest_runner_kind_serves_the_configuration_on_a_private_platform():
    with open_runner(EvalConfig(), "rest") as runner:
        result = run_eval("classify", runner, limit=1)
    assert all(m["error"] is None for k, m in result["metrics"].items() if k != "mean")
    assert result["dataset"]["subset"] == "first 1"
