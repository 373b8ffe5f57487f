"""The models `make run` serves when the deployment names none: for each app, the packaged model whose
eval figures are best, among the pools this machine can hold.

The figures are `vireo eval <app> --vs model=qwen2.5-coder-<size>,quant=gguf` on the CPU, SmolLM2 beside
each Qwen model in one run, and HumanEval for the code app (benchmarks/results/quality/default-pool/,
summarised in benchmarks/README.md, "The default models"). `POOLS` is what they showed, best first;
`choose_default_pool` serves the first whose models are installed and intact (their GGUF files are
hash-checked when resolved) and fit in the memory available, else SmolLM2 alone, and says why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vireo.inference.api import EngineError
from vireo.inference.registry import ModelIntegrityError, ModelRegistry
from vireo.platform.settings import Settings

SMOLLM2 = "smollm2-135m"
QWEN_SMALL = "qwen2.5-coder-0.5b"
QWEN_LARGE = "qwen2.5-coder-1.5b"


@dataclass(frozen=True)
class Pool:
    """A default model (every app not listed) and the apps that take another one."""

    default: str
    app_models: dict[str, str] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys([self.default, *sorted(self.app_models.values())]))


# best first (see the module docstring for where the choice comes from). Against SmolLM2 both Qwen models
# win every app; between them the 1.5B wins classify (accuracy 0.80 vs 0.63), rag (answer found 1.00 vs
# 0.88, abstains on 0.25 vs 0 of the unanswerable), judge (agreement with people 0.81 vs 0.13), translate
# (chrF 73/82 vs 62/65) and code (HumanEval 0.70 vs 0.52); the 0.5B ties chat (every check passed) and
# wins summarize (ROUGE-1 0.46 vs 0.42) and generate (checks 0.38 vs 0.13), at a third of the cost
POOLS: list[Pool] = [
    Pool(QWEN_SMALL, {app: QWEN_LARGE for app in ("classify", "code", "judge", "rag", "translate")}),
    Pool(QWEN_SMALL),
]
FALLBACK = Pool(SMOLLM2)
# one worker's memory on a CPU: resident once loaded (`vireo serve worker`, 2026-12-05: SmolLM2 float32
# 1.44 GB, Qwen2.5-Coder-1.5B from its GGUF blocks 2.33 GB) plus the KV cache of a few concurrent jobs
# (the 1.5B's float32 cache holds 57 KB a token)
WORKER_MEMORY_GIB = {SMOLLM2: 2.0, QWEN_SMALL: 2.5, QWEN_LARGE: 3.5}
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


def memory_needed_gib(pool: Pool) -> float:
    return sum(WORKER_MEMORY_GIB[model] for model in pool.models) + HEADROOM_GIB


def why_not(pool: Pool, registry: ModelRegistry, available_bytes: int) -> str | None:
    """Why this machine cannot serve `pool`, or None if it can (its models then resolved: converted once
    and hash-checked)."""
    missing = [model for model in pool.models if not registry.installed(model)]
    if missing:
        return f"{', '.join(missing)} not installed (pip install 'vireo[models-qwen]'; make run installs it)"
    needed = memory_needed_gib(pool)
    if available_bytes < needed * 2**30:
        return f"{needed:.1f} GiB needed, {available_bytes / 2**30:.1f} GiB available"
    for model in pool.models:
        try:
            registry.resolve(model)
        except (ModelIntegrityError, EngineError, OSError) as exc:
            return f"{model} cannot be served ({exc})"
    return None


def describe(pool: Pool) -> str:
    by_model: dict[str, list[str]] = {}
    for app, model in sorted(pool.app_models.items()):
        by_model.setdefault(model, []).append(app)
    others = "".join(f"; {model} for {', '.join(apps)}" for model, apps in by_model.items())
    return f"{pool.default} for every app{' but those named' if others else ''}{others}"


def choose_default_pool(settings: Settings, available_bytes: int) -> PoolChoice:
    """The first of `POOLS` this machine can serve (installed, intact, fitting in `available_bytes`), else
    SmolLM2 alone; the reason says which and why."""
    registry = ModelRegistry(settings.home)
    refused: list[str] = []
    on_cpu = settings.engine.resolved().device == "cpu"
    for pool in POOLS:
        reason = why_not(pool, registry, available_bytes)
        if reason is not None:
            refused.append(f"{' + '.join(pool.models)}: {reason}")
            continue
        # on a CPU the Qwen models run from their GGUF files' own blocks (int4), as their evals did
        engines = {model: {"quantization": "gguf"} for model in pool.models if model != SMOLLM2} if on_cpu else {}
        return PoolChoice(
            pool.models,
            dict(pool.app_models),
            engines,
            f'{describe(pool)} (the best on their evals: benchmarks/README.md, "The default models")'
            + (f"; passed over: {'; '.join(refused)}" if refused else ""),
        )
    return PoolChoice(
        FALLBACK.models,
        reason="SmolLM2 serves every app" + (f" ({'; '.join(refused)})" if refused else ""),
    )
