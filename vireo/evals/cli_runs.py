"""What `vireo eval` does: pick a runner, evaluate one or more models, write and print results."""

from __future__ import annotations

import json

from vireo.evals.harness import run_eval, write_result
from vireo.evals.runners import local_runner, rest_runner

DEFAULT_MODEL = "smollm2-135m"


def _api_answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url.rstrip('/')}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _local(model: str, backend: str):
    from vireo.inference.factory import create_engine
    from vireo.platform.settings import get_settings

    config = get_settings().engine_config()
    config.model = model
    return local_runner(create_engine(backend, config))


def _one(app_name: str, model: str | None, backend: str | None, full: bool) -> dict:
    from vireo.platform.settings import get_settings

    settings = get_settings()
    if backend is None and model in (None, settings.model) and _api_answers(settings.api_url):
        runner, model, backend, how = rest_runner(settings.api_url, settings.api_key), settings.model, \
            f"{settings.engine} (via REST)", "rest"
    else:
        model, backend = model or DEFAULT_MODEL, backend or "hf"
        runner, how = _local(model, backend), "local"
    result = run_eval(app_name, runner, full=full, model=model, backend=backend)
    result["runner"] = how
    result["written_to"] = str(write_result(result))
    return result


def evaluate_models(app_name: str, model: str | None, backend: str | None, full: bool, vs: str | None,
                    as_json: bool) -> None:
    results = [_one(app_name, model, backend, full)]
    for other in filter(None, (m.strip() for m in (vs or "").split(","))):
        results.append(_one(app_name, other, backend or "hf", full))
    if as_json:
        print(json.dumps(results[0] if len(results) == 1 else {"runs": results}, indent=2, ensure_ascii=False))
        return
    for result in results:
        print(f"{result['app']} | {result['model']} ({result['backend']}) | {result['dataset']['items']} items "
              f"({result['dataset']['subset']}) | {json.dumps(result['metrics'])} -> {result['written_to']}")
