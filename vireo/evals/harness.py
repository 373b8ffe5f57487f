"""Run an app's quality eval through an injected runner and record the result as JSON.

`run_eval(app_name, runner, full=False)` -> dict with the metrics, the dataset, per-item
details, date and machine. Each app's dataset and metric live in `vireo/evals/<app>_eval.py`,
a module with `evaluate(runner, full, concurrency) -> {"dataset", "metrics", "items"}`; adding
such a file is all it takes to give an app an eval.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from pathlib import Path

from vireo.evals.runners import Runner

RESULTS = Path("benchmarks/results/quality")


def available_evals() -> list[str]:
    """App names that have a `vireo/evals/<app>_eval.py`."""
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


def machine_info() -> dict:
    """Where the numbers were measured (load matters on a shared machine)."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    import torch

    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def run_eval(app_name: str, runner: Runner, full: bool = False, *, concurrency: int = 4,
             model: str | None = None, backend: str | None = None) -> dict:
    """Evaluate `app_name` on its dataset (the CI subset unless `full`) using `runner`."""
    if app_name not in available_evals():
        raise KeyError(f"no eval for app {app_name!r}; evals exist for: {', '.join(available_evals())}")
    module = import_module(f"vireo.evals.{app_name}_eval")
    machine = machine_info()
    started = time.monotonic()
    result = module.evaluate(runner, full=full, concurrency=concurrency)
    return {"app": app_name, "model": model, "backend": backend, **result,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - started, 1), "concurrency": concurrency, "machine": machine}


def result_path(app_name: str, model: str | None, default_model: str = "smollm2-135m") -> Path:
    """benchmarks/results/quality/<app>.json for the default model, <app>-<model>.json otherwise."""
    suffix = "" if model in (None, default_model) else f"-{model}"
    return RESULTS / f"{app_name}{suffix}.json"


def write_result(result: dict, path: Path | None = None) -> Path:
    path = path or result_path(result["app"], result.get("model"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path


def run_cli_eval(app_name: str, model: str | None = None, backend: str | None = None, full: bool = False,
                 vs: str | None = None, as_json: bool = False) -> None:
    """`vireo eval`: through the running API when one answers and no backend is named, else
    in-process on `backend` (default hf); `--vs m1,m2` adds more models side by side."""
    from vireo.evals.cli_runs import evaluate_models

    evaluate_models(app_name, model=model, backend=backend, full=full, vs=vs, as_json=as_json)
