"""Base against variant: the same eval through the same kind of runner on two configurations,
metrics side by side with their differences, and (for open-ended apps) the judge's pairwise
verdicts between the two configurations' outputs."""

from __future__ import annotations

import datetime as dt

from vireo.tools.evals.configs import EvalConfig
from vireo.tools.evals.harness import eval_module, is_open_ended, run_eval
from vireo.tools.evals.judging import pairwise
from vireo.tools.evals.runners import open_runner
from vireo.tools.machine import machine_info


def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested metrics as 'a.b' paths (booleans and text are left out)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[path] = value
    return flat


def differences(base: dict, variant: dict) -> dict[str, dict]:
    """Every numeric metric the two runs share: base, variant and variant - base."""
    base_flat, variant_flat = flatten(base), flatten(variant)
    return {
        path: {
            "base": base_flat[path],
            "variant": variant_flat[path],
            "delta": round(variant_flat[path] - base_flat[path], 4),
        }
        for path in base_flat
        if path in variant_flat
    }


def _side(result: dict) -> dict:
    """What a comparison keeps of one run (the shared header fields move up a level)."""
    return {key: result[key] for key in ("config", "metrics", "items", "duration_s")}


def compare(
    app_name: str,
    base: EvalConfig,
    variant: EvalConfig,
    runner_kind: str = "local",
    full: bool = False,
    limit: int | None = None,
    concurrency: int | None = None,
) -> dict:
    """Run `app_name`'s eval on `base` then `variant`; the judge (on `base`) compares open-ended outputs."""
    machine = machine_info()

    def evaluate(runner, config: EvalConfig) -> dict:
        return run_eval(app_name, runner, full=full, config=config, limit=limit, concurrency=concurrency)

    if not is_open_ended(app_name):  # no judge: one engine in memory at a time (two 1.5B fp32 engines ~20 GB)
        with open_runner(base, runner_kind) as base_runner:
            base_result = evaluate(base_runner, base)
        with open_runner(variant, runner_kind) as variant_runner:
            variant_result = evaluate(variant_runner, variant)
        judge = None
    else:
        with open_runner(base, runner_kind) as base_runner:
            base_result = evaluate(base_runner, base)
            with open_runner(variant, runner_kind) as variant_runner:
                variant_result = evaluate(variant_runner, variant)
            view = eval_module(app_name).judge_items
            judge = pairwise(base_runner, view(base_result["items"]), view(variant_result["items"]), base)
    return {
        "app": app_name,
        "kind": "comparison",
        "runner": runner_kind,
        "varied": base.differences(variant),
        "dataset": base_result["dataset"],
        "base": _side(base_result),
        "variant": _side(variant_result),
        "differences": differences(base_result["metrics"], variant_result["metrics"]),
        "judge": judge,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
    }
