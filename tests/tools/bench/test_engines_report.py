"""`vireo bench engines`' report: ratios to a peer measured in the same run, and its Markdown table."""

from __future__ import annotations

import pytest

from vireo.tools.bench.engines import compare_speed, markdown_table, median_over_rounds


def _result(backend: str, levels: list[tuple[int, float, float]]) -> dict:
    return {
        "backend": backend,
        "startup_s": 1.0,
        "peak_rss_mb": 500,
        "levels": [
            {
                "concurrency": c,
                "output_tokens_per_s": tps,
                "ttft_p50_s": ttft,
                "ttft_p95_s": ttft,
                "itl_p50_s": 0.01,
                "itl_p95_s": 0.02,
            }
            for c, tps, ttft in levels
        ],
    }


def test_ratios_to_llamacpp_are_per_concurrency_and_shown_in_their_own_column():
    results = [_result("native", [(1, 20.0, 0.2), (4, 60.0, 0.4)]), _result("llamacpp", [(1, 100.0, 0.1)])]
    compare_speed(results, "llamacpp")
    native_1, native_4 = results[0]["levels"]
    assert native_1["tokens_per_s_vs_llamacpp"] == 0.2 and native_1["ttft_p50_vs_llamacpp"] == 2.0
    assert "tokens_per_s_vs_llamacpp" not in native_4  # llama.cpp did not run that level
    table = markdown_table({"results": results, "failures": {"hf": "RuntimeError: boom"}}).splitlines()
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[3:5] == ["vs hf", "vs llamacpp"]
    native_row = [cell.strip() for cell in table[2].strip("|").split("|")]
    assert native_row[:5] == ["native", "1", "20.0", "-", "0.2"] and len(native_row) == len(header)
    assert table[-1].startswith("| hf | failed: RuntimeError: boom |") and table[-1].count("|") == len(header) + 1


def test_rounds_take_their_own_ratios_and_the_median_of_each():
    rounds = []
    for native_tps, peer_tps, native_itl in ((20.0, 10.0, 0.05), (30.0, 10.0, 0.04), (12.0, 12.0, 0.08)):
        results = [_result("native", [(1, native_tps, 0.2)]), _result("llamacpp", [(1, peer_tps, 0.1)])]
        results[0]["levels"][0]["itl_p50_s"] = native_itl
        results[1]["levels"][0]["itl_p50_s"] = 0.04
        compare_speed(results, "llamacpp")
        rounds.append(results)
    summary = median_over_rounds(rounds)
    (native,) = summary["native"]
    assert native["rounds"] == 3
    assert native["output_tokens_per_s"] == {"per_round": [20.0, 30.0, 12.0], "median": 20.0}
    assert native["tokens_per_s_vs_llamacpp"] == {"per_round": [2.0, 3.0, 1.0], "median": 2.0}
    assert native["itl_p50_llamacpp_over_ours"] == {"per_round": [0.8, 1.0, 0.5], "median": 0.8}
    (peer,) = summary["llamacpp"]
    assert "itl_p50_llamacpp_over_ours" not in peer and peer["tokens_per_s_vs_llamacpp"]["median"] == 1.0


def test_without_llamacpp_the_table_keeps_its_columns():
    header = markdown_table({"results": [_result("native", [(1, 20.0, 0.2)])]}).splitlines()[0]
    assert "vs llamacpp" not in header and header.count("|") == 10


def test_a_backend_named_with_a_quantization_and_kernels_is_that_engine_config():
    from vireo.tools.bench.engines import backend_variant

    assert backend_variant("native") == ("native", {})
    assert backend_variant("native:gguf") == ("native", {"quantization": "gguf"})
    assert backend_variant("native:gguf:pytorch-kernels") == (
        "native",
        {"quantization": "gguf", "cpu_kernels": False},
    )
    with pytest.raises(ValueError, match="quantization"):
        backend_variant("native:int3")


def test_the_llamacpp_peer_takes_its_named_variants_only():
    from vireo.tools.bench.engines import is_llamacpp, llamacpp_job

    assert is_llamacpp("llamacpp") and is_llamacpp("llamacpp:no-extra-bufts") and not is_llamacpp("native:gguf")
    with pytest.raises(ValueError, match="no-extra-bufts"):
        llamacpp_job("smollm2-135m", None, {}, 4, 2, 128, "llamacpp:fast")


def test_a_backends_peak_memory_is_its_own_not_that_of_the_process_that_started_it():
    """Each backend runs in a process the bench starts; Linux's `ru_maxrss` carries the starting process's
    peak over `exec`, so a small process started by a large one reported the large one's memory (the
    llama.cpp peer's SmolLM2 peak read 624 MB where its own was ~270). `own_peak_rss_mb` is the child's."""
    import subprocess
    import sys

    held = bytearray(300 * 2**20)
    for i in range(0, len(held), 4096):
        held[i] = 1  # touched: 300 MB more of this process's RSS
    code = "from vireo.tools.bench.engine_measures import own_peak_rss_mb; print(own_peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < child < 150, child
    del held


def _rounds_of(native: list[tuple[float, float, int]], peer_rss: int = 400) -> list[list[dict]]:
    """Rounds of native:gguf beside llama.cpp: per round (tok/s at 1, tok/s at 8, native's peak RSS); llama.cpp
    makes 10 tok/s at both levels."""
    rounds = []
    for tps_1, tps_8, rss in native:
        results = [
            _result("native:gguf", [(1, tps_1, 0.2), (8, tps_8, 0.4)]),
            _result("llamacpp", [(1, 10.0, 0.1), (8, 10.0, 0.1)]),
        ]
        results[0]["peak_rss_mb"], results[1]["peak_rss_mb"] = rss, peer_rss
        compare_speed(results, "llamacpp")
        rounds.append(results)
    return rounds


def test_goals_against_llamacpp_take_the_medians_over_rounds_and_say_which_are_met():
    from vireo.tools.bench.engines import llamacpp_goals

    rounds = _rounds_of([(12.0, 25.0, 480), (9.0, 19.0, 560), (11.0, 30.0, 520)])
    report = {"results": rounds[0], "rounds": rounds, "median_over_rounds": median_over_rounds(rounds)}
    (goal,) = llamacpp_goals(report).values()
    assert goal["figures"] == {
        "tokens_per_s_vs_llamacpp_at_1": 1.1,
        "tokens_per_s_vs_llamacpp_at_8": 2.5,
        "peak_rss_vs_llamacpp": 1.3,  # 480, 520, 560 over 400: the median round's 1.3 is within the goal
    }
    assert goal["met"] == {
        "tokens_per_s_vs_llamacpp_at_1": True,
        "tokens_per_s_vs_llamacpp_at_8": True,
        "peak_rss_vs_llamacpp": True,
    }
    slower = _rounds_of([(9.5, 19.0, 600)])
    (goal,) = llamacpp_goals({"results": slower[0]}).values()
    assert goal["met"] == {
        "tokens_per_s_vs_llamacpp_at_1": False,
        "tokens_per_s_vs_llamacpp_at_8": False,
        "peak_rss_vs_llamacpp": False,
    }
    assert llamacpp_goals({"results": [_result("native", [(1, 20.0, 0.2)])]}) is None  # no peer, no goals


def test_a_level_not_run_is_no_goal_met():
    from vireo.tools.bench.engines import llamacpp_goals

    results = [_result("native:gguf", [(1, 30.0, 0.2)]), _result("llamacpp", [(1, 10.0, 0.1)])]
    compare_speed(results, "llamacpp")
    (goal,) = llamacpp_goals({"results": results}).values()
    assert goal["figures"]["tokens_per_s_vs_llamacpp_at_8"] is None
    assert goal["met"]["tokens_per_s_vs_llamacpp_at_1"] and not goal["met"]["tokens_per_s_vs_llamacpp_at_8"]


def test_several_models_make_one_report_with_each_models_goals(monkeypatch):
    from vireo.tools.bench import engines

    def fake_run(model: str, **options) -> dict:
        (results,) = _rounds_of([(12.0, 25.0 if model == "a" else 15.0, 480)])
        return {"model": model, "date": "d", "machine": {"cpu": "x"}, "results": results, "options": options}

    monkeypatch.setattr(engines, "run_engine_benchmark", fake_run)
    report = engines.run_engine_benchmarks(["a", "b"], rounds=1)
    assert [one["model"] for one in report["models"]] == ["a", "b"]
    assert report["models"][0]["options"] == {"rounds": 1}
    goals = report["llamacpp_goals"]
    assert goals["by_model"]["a"]["native:gguf"]["met"]["tokens_per_s_vs_llamacpp_at_8"]
    assert not goals["by_model"]["b"]["native:gguf"]["met"]["tokens_per_s_vs_llamacpp_at_8"]
    assert goals["every_goal_met"] is False
    table = engines.markdown_table(report)
    assert "#### a" in table and "#### b" in table
    assert "| native:gguf | 1.2 (met) | 1.5 (not met) | 1.2 (met) |" in table
    single = engines.run_engine_benchmarks(["a"], rounds=1)
    assert single["model"] == "a" and "models" not in single and "llamacpp_goals" in single
