"""Run an app's quality eval through an injected runner and record the result as JSON.

`run_eval(app_name, runner, full=False)` -> dict with the metrics, the dataset, per-item
details, configuration, date and machine. Each app's dataset and metric live in
`vireo/tools/evals/<app>_eval.py`, a module with `evaluate(runner, full, concurrency) -> {"dataset",
"metrics", "items"}` (and `judge_items(items)` when its outputs are open-ended); adding such a file
is all it takes to give an app an eval.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from pathlib import Path

from vireo.tools.evals.configs import EvalConfig
from vireo.tools.evals.runners import Runner
from vireo.tools.machine import machine_info
from vireo.tools.paths import RESULTS

# the committed tables, in the source checkout beside the package (absent in an installed wheel)
COMMITTED_RESULTS = RESULTS / "quality"


def user_results_dir(home: Path) -> Path:
    """Where `vireo eval` writes unless told otherwise: the user's Vireo home, never the checkout."""
    return home / "eval-results"


def available_evals() -> list[str]:
    """App names that have a `vireo/tools/evals/<app>_eval.py`."""
    return sorted(p.name[: -len("_eval.py")] for p in Path(__file__).parent.glob("*_eval.py"))


def run_jobs(runner: Runner, jobs: list[tuple[str, dict, dict]], concurrency: int) -> list[dict]:
    """Run (app, input, options) jobs, `concurrency` at a time; a failure becomes {"error": ...}."""

    def one(job: tuple[str, dict, dict]) -> dict:
        try:
            return runner(*job)
        except Exception as exc:  # one bad item must not sink the eval; it is counted as a miss
            return {"error": f"{type(exc).__name__}: {exc}"}

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, jobs))


def eval_module(app_name: str):
    """The `vireo/tools/evals/<app>_eval.py` module of an app."""
    if app_name not in available_evals():
        raise KeyError(f"no eval for app {app_name!r}; evals exist for: {', '.join(available_evals())}")
    return import_module(f"vireo.tools.evals.{app_name}_eval")


def is_open_ended(app_name: str) -> bool:
    """Apps whose outputs the judge grades (their eval module says what the judge sees)."""
    return hasattr(eval_module(app_name), "judge_items")


def run_eval(
    app_name: str,
    runner: Runner,
    full: bool = False,
    *,
    concurrency: int | None = None,
    config: EvalConfig | None = None,
    limit: int | None = None,
) -> dict:
    """Evaluate `app_name` on its dataset (the CI subset unless `full`; the first `limit` items
    when given) using `runner`; `config` names what the runner serves. Jobs in flight: `concurrency`,
    else the eval module's `CONCURRENCY`, else 4."""
    module = eval_module(app_name)
    concurrency = concurrency or getattr(module, "CONCURRENCY", 4)
    config = config or EvalConfig()
    machine = machine_info()
    started = time.monotonic()
    result = module.evaluate(runner, full=full, concurrency=concurrency, **({"limit": limit} if limit else {}))
    if limit:
        result["dataset"]["subset"] = f"first {limit}"
    from vireo.inference.quant.quantize import weights_origin

    return {
        "app": app_name,
        "model": config.model,
        "backend": config.backend,
        "config": config.as_dict(),
        "weights_origin": weights_origin(config.model),
        **result,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "concurrency": concurrency,
        "machine": machine,
    }


def result_path(folder: Path, app_name: str, config: EvalConfig, variant: EvalConfig | None = None) -> Path:
    """<app>.json for the default configuration, <app>-<what differs>.json otherwise;
    comparisons add -vs-<what the variant changes>."""
    from vireo.tools.evals.configs import label

    name = "-".join(filter(None, [app_name, label(config)]))
    if variant is not None:
        name += f"-vs-{label(variant, config)}"
    return folder / f"{name}.json"


def write_result(result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path
