"""The models `make run` serves when the user names none: for each app, the packaged model whose eval
figures are best among those this machine runs at a speed a person can follow.

The figures are `vireo eval <app> --vs model=qwen2.5-coder-<size>,quant=gguf` on the CPU, SmolLM2 beside
each Qwen model in one run (benchmarks/results/quality/default-pool/, summarised in benchmarks/README.md,
"The default models"). The choice below is what they showed; `choose_default_pool` applies it to this
machine: the Qwen packages installed and intact (their GGUF files are hash-checked when resolved) and
the memory to hold both workers; otherwise SmolLM2 alone, saying why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vireo.inference.api import EngineError
from vireo.inference.registry import ModelIntegrityError, ModelRegistry
from vireo.platform.settings import Settings

SMALL = "smollm2-135m"
LARGE = "qwen2.5-coder-1.5b"
# app -> model, from the eval figures (see the module docstring); apps not named keep the default (SMALL)
APP_MODELS: dict[str, str] = {}
# one worker's memory on a CPU: resident once loaded (`vireo serve worker`, 2026-12-05: SmolLM2 float32
# 1.44 GB, Qwen2.5-Coder-1.5B from its GGUF blocks 2.33 GB) plus the KV cache of a few concurrent jobs
# (the 1.5B's float32 cache holds 57 KB a token)
WORKER_MEMORY_GIB = {SMALL: 2.0, LARGE: 3.5}
HEADROOM_GIB = 2.0  # the API, the UI, Redis and the page cache around them


@dataclass
class PoolChoice:
    """The served models (the default first), each app's model, each model's engine settings, and why."""

    models: list[str]
    app_models: dict[str, str] = field(default_factory=dict)
    model_engines: dict[str, dict] = field(default_factory=dict)
    reason: str = ""

    def environment(self) -> dict[str, str]:
        """The `VIREO_*` variables that make the API and the workers serve this pool."""
        return {
            "VIREO_MODELS": ",".join(self.models),
            "VIREO_APP_MODELS": ",".join(f"{app}:{model}" for app, model in sorted(self.app_models.items())),
            "VIREO_MODEL_ENGINES": json.dumps(self.model_engines) if self.model_engines else "",
        }


def user_named_models(settings: Settings) -> bool:
    """Whether the deployment names its models itself (VIREO_MODEL, VIREO_MODELS, VIREO_APP_MODELS or
    VIREO_MODEL_ENGINES): then it is served as named."""
    named = {"models", "app_models", "model_engines"} & settings.model_fields_set
    return bool(named) or "model" in settings.engine.model_fields_set


def choose_default_pool(settings: Settings, available_bytes: int) -> PoolChoice:
    """The default pool on this machine: SmolLM2, plus the Qwen model for the apps it serves better, when
    it is installed, intact and fits in `available_bytes`."""
    larger = sorted(set(APP_MODELS.values()))
    if not larger:
        return PoolChoice([SMALL], reason="SmolLM2 serves every app")
    registry = ModelRegistry(settings.home)
    needed = (sum(WORKER_MEMORY_GIB[m] for m in [SMALL, *larger]) + HEADROOM_GIB) * 2**30
    apps = ", ".join(sorted(APP_MODELS))
    for model in larger:
        if not registry.installed(model):
            return PoolChoice(
                [SMALL],
                reason=f"{model} is not installed (pip install 'vireo[models-qwen]'; make run installs it), "
                f"so SmolLM2 serves every app; {model} answers {apps} better",
            )
    if available_bytes < needed:
        return PoolChoice(
            [SMALL],
            reason=f"this machine has {available_bytes / 2**30:.1f} GiB of memory available and the pool with "
            f"{', '.join(larger)} needs {needed / 2**30:.1f} GiB, so SmolLM2 serves every app",
        )
    for model in larger:
        try:
            registry.resolve(model)  # converts once; checks the package's sha256
        except (ModelIntegrityError, EngineError, OSError) as exc:
            return PoolChoice([SMALL], reason=f"{model} cannot be served ({exc}), so SmolLM2 serves every app")
    on_cpu = settings.engine.resolved().device == "cpu"
    engines = {model: {"quantization": "gguf"} for model in larger} if on_cpu else {}
    return PoolChoice(
        [SMALL, *larger],
        dict(APP_MODELS),
        engines,
        reason=f'{", ".join(larger)} serves {apps} (better on their evals, benchmarks/README.md "The default '
        f'models"){" from its GGUF blocks (int4)" if on_cpu else ""}; SmolLM2 the rest',
    )
