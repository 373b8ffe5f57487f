"""Base against variant on real tiny runs: the side-by-side JSON and the judge's pairwise verdicts."""

import pytest

from vireo.tools.evals.compare import compare, differences
from vireo.tools.evals.configs import EvalConfig, variant_of


def test_differences_pair_every_shared_numeric_metric():
    base = {"rouge1": 0.5, "mean": {"accuracy": 0.25}, "error": None, "ok": True}
    variant = {"rouge1": 0.75, "mean": {"accuracy": 0.25}}
    assert differences(base, variant) == {
        "rouge1": {"base": 0.5, "variant": 0.75, "delta": 0.25},
        "mean.accuracy": {"base": 0.25, "variant": 0.25, "delta": 0.0},
    }


@pytest.fixture(scope="module")
def speculation_comparison():
    base = EvalConfig()
    return compare("summarize", base, variant_of(base, "spec=prompt_lookup"), limit=1)


def test_comparison_keeps_both_runs_and_what_was_varied(speculation_comparison):
    result = speculation_comparison
    assert result["kind"] == "comparison" and result["varied"] == {"spec": "prompt_lookup"}
    assert result["base"]["config"]["spec"] == "off" and result["variant"]["config"]["spec"] == "prompt_lookup"
    assert len(result["base"]["items"]) == len(result["variant"]["items"]) == result["dataset"]["items"] == 1


def test_comparison_reports_each_metric_side_by_side(speculation_comparison):
    rouge = speculation_comparison["differences"]["rouge1"]
    assert rouge["delta"] == pytest.approx(rouge["variant"] - rouge["base"], abs=1e-4)
    assert rouge["base"] == speculation_comparison["base"]["metrics"]["rouge1"]


def test_open_ended_outputs_are_judged_pairwise_in_both_orders_by_a_named_judge(speculation_comparison):
    judge = speculation_comparison["judge"]
    assert judge["judge"]["model"] == "smollm2-135m" and judge["judged"] == 1
    labels = judge["labels"]
    assert labels["base_wins"] + labels["variant_wins"] + labels["ties"] + labels["inconsistent"] == 1
    assert all(set(v["orders"]) == {"ab", "ba"} for v in labels["verdicts"].values())
    assert sum(judge["likelihood"][k] for k in ("base_wins", "variant_wins", "ties")) == 1
