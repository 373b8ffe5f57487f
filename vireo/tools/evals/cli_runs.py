"""What `vireo eval` does: evaluate one configuration, or compare it with a `--vs` variant; write
the JSON (to the user's results folder, `--out`, or with `--record` the committed tables) and print
it (or a short summary)."""

from __future__ import annotations

import json
from pathlib import Path

from vireo.tools.evals.compare import compare
from vireo.tools.evals.configs import EvalConfig, variant_of
from vireo.tools.evals.harness import eval_module, is_open_ended, result_path, run_eval, write_result
from vireo.tools.evals.judging import single_answer_scores
from vireo.tools.evals.runners import open_runner


def evaluate_one(
    app_name: str, config: EvalConfig, runner_kind: str = "local", full: bool = False, limit: int | None = None
) -> dict:
    """One configuration's eval; open-ended outputs also get the judge's single-answer scores."""
    with open_runner(config, runner_kind) as runner:
        result = run_eval(app_name, runner, full=full, config=config, limit=limit)
        if is_open_ended(app_name):
            result["judge"] = single_answer_scores(runner, eval_module(app_name).judge_items(result["items"]), config)
    return {**result, "runner": runner_kind}


def run_cli(
    app_name: str,
    base: EvalConfig,
    vs: str | None,
    runner_kind: str,
    full: bool,
    limit: int | None,
    as_json: bool,
    out: Path,
) -> dict:
    """Run, write the JSON into `out` (a folder, or a file ending in .json), print; returns the result."""
    variant = variant_of(base, vs) if vs else None
    path = out if out.suffix == ".json" else result_path(out, app_name, base, variant)
    if variant is not None:
        result = compare(app_name, base, variant, runner_kind, full=full, limit=limit)
    else:
        result = evaluate_one(app_name, base, runner_kind, full=full, limit=limit)
    result["written_to"] = str(write_result(result, path))
    print(json.dumps(result, indent=2, ensure_ascii=False) if as_json else summary_lines(result))
    return result


def summary_lines(result: dict) -> str:
    """A few human lines: the metrics (or their differences) and where the JSON went."""
    if result.get("kind") == "comparison":
        lines = [f"{result['app']}: {json.dumps(result['base']['config'])} vs {json.dumps(result['varied'])}"]
        lines += [
            f"  {path}: {d['base']} -> {d['variant']} ({d['delta']:+})" for path, d in result["differences"].items()
        ]
        judge = result.get("judge") or {}
        for method in ("labels", "likelihood"):
            if method in judge:
                j = judge[method]
                lines.append(
                    f"  judge ({judge['judge']['model']}, {method}): base {j['base_wins']} / variant "
                    f"{j['variant_wins']} / tie {j['ties']} / inconsistent {j['inconsistent']}"
                )
    else:
        lines = [
            f"{result['app']} | {json.dumps(result['config'])} | {result['dataset']['items']} items "
            f"({result['dataset']['subset']}) | {json.dumps(result['metrics'])}"
        ]
        if result.get("judge"):
            lines.append(
                f"  judge ({result['judge']['judge']['model']}): mean score {result['judge'].get('mean_score')}"
            )
    return "\n".join(lines + [f"-> {result['written_to']}"])
