"""One typed settings object, read once from `VIREO_*` environment variables (and `.env`)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vireo.inference.engine_config import EngineConfig  # no torch at import: worker-health and the sandbox stay light
from vireo.inference.registry import default_home
from vireo.platform.engine_env import with_engine_variables


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIREO_", env_file=".env", extra="ignore", env_nested_delimiter="__")

    home: Path = Field(default_factory=default_home)
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "VIREO_REDIS_URL"))
    api_key: str = "vireo-dev-key"
    # api_key: the bootstrap admin key (tenant "default"); api_keys: user keys as "key:tenant,key2:tenant2"
    api_keys: str = ""
    # limits (0 = unlimited; a key made by `vireo keys create` may override each): requests per minute
    # per key (job submissions, OpenAI completions, collection writes), queued + running jobs per tenant,
    # prompt + completion tokens per tenant per UTC day
    rate_limit_rpm: int = Field(600, ge=0)
    max_concurrent_jobs: int = Field(64, ge=0)
    tokens_per_day: int = Field(0, ge=0)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # API processes (uvicorn workers) on that port: each SSE stream costs the API a Redis read and a send
    # per engine step, so a GPU serving dozens of streams wants several (the reaper runs under a lease)
    api_workers: int = Field(1, ge=1)
    ui_port: int = 8501
    api_url: str = "http://127.0.0.1:8000"
    # logs and metrics (docs/OPERATIONS.md): json = one JSON object per line, text = for a terminal;
    # metrics_token: a bearer token that may read /metrics and nothing else (admin keys always may)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "text"
    metrics_token: str = ""

    # jobs
    job_ttl_s: int = 7 * 24 * 3600
    events_maxlen: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024
    queue: str = "vireo"
    worker_concurrency: int = 32
    cancel_poll_s: float = 0.1
    # jobs outlive workers (docs/SECURITY.md): a worker is gone once its heartbeat key is worker_ttl_s old;
    # the reaper re-queues its jobs within worker_ttl_s + reaper_interval_s, up to max_attempts runs;
    # a broker message delivered but never claimed (worker died first) is redelivered after redelivery_s
    worker_heartbeat_s: float = 2.0
    worker_ttl_s: float = 10.0
    worker_stall_s: float = 120.0  # a worker whose engine loop has not turned this long counts as hung
    max_job_s: float = 3600.0  # a job running longer is stopped and failed with a message saying so
    reaper_interval_s: float = 5.0
    max_attempts: int = 3
    redelivery_s: int = 20
    drain_timeout_s: float = 20.0  # on SIGTERM, running jobs get this long to finish before going back

    # the engine the worker builds (vireo/inference/engine_config.py): flat VIREO_<FIELD> variables
    # (VIREO_ENGINE names the backend) or VIREO_ENGINE__<FIELD>; engine.home follows `home`
    engine: EngineConfig = Field(default_factory=EngineConfig)
    # the model pool (docs/OPERATIONS.md, "Several models"): VIREO_MODELS names the served models, the first
    # being the default (unset: VIREO_MODEL alone); each has its own queue and workers (`vireo serve worker
    # --model NAME`). VIREO_APP_MODELS=code:qwen2.5-coder-1.5b,... gives apps their default model;
    # VIREO_MODEL_ENGINES='{"qwen2.5-coder-1.5b": {"quantization": "int8"}}' sets one model's engine
    # settings apart from `engine`'s. worker_model: the model this worker process serves (set by --model).
    models: str = ""
    app_models: str = ""
    model_engines: Annotated[dict[str, dict[str, Any]], NoDecode] = Field(default_factory=dict)  # JSON, read below
    worker_model: str | None = None
    model_alias: str | None = None  # the name clients use instead of the model id (vireo/platform/served_model.py)
    chroma_url: str | None = None

    # the code sandbox (vireo/apps/sandbox): auto = bubblewrap where it works, else the sandbox service
    # at sandbox_socket, else code is not run; unsafe-local runs code with rlimits only (trusted code)
    sandbox: Literal["auto", "bwrap", "remote", "unsafe-local"] = "auto"
    sandbox_socket: Path | None = None  # the sandbox service's Unix socket (vireo serve sandbox)
    sandbox_python: str | None = None  # the interpreter programs run with (default: found, readable by the sandbox)

    @field_validator("worker_model", "model_engines", mode="before")
    @classmethod
    def _empty_is_unset(cls, value, info):
        """`VIREO_WORKER_MODEL=` or `VIREO_MODEL_ENGINES=` (compose passing an empty .env value) mean unset;
        VIREO_MODEL_ENGINES is JSON."""
        if isinstance(value, str) and not value.strip():
            return None if info.field_name == "worker_model" else {}
        if info.field_name == "model_engines" and isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f'VIREO_MODEL_ENGINES is not JSON ({exc}); e.g. \'{{"model": {{"quantization": "int8"}}}}\''
                )
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value):
        return value.lower() if isinstance(value, str) else value

    def tenants_by_key(self) -> dict[str, str]:
        keys = {self.api_key: "default"}
        for pair in filter(None, (p.strip() for p in self.api_keys.split(","))):
            key, _, tenant = pair.partition(":")
            keys[key.strip()] = tenant.strip() or "default"
        return keys

    @model_validator(mode="after")
    def _engine_home(self) -> Settings:
        if self.engine.home is None:
            self.engine = self.engine.model_copy(update={"home": self.home})
        return self

    @property
    def model(self) -> str:
        """The model of `engine`: the worker's own model in a worker (`for_worker`), else the default."""
        return self.engine.model

    @property
    def served_models(self) -> list[str]:
        """The models this deployment serves, the default first (VIREO_MODELS, else VIREO_MODEL)."""
        listed = [name.strip() for name in self.models.split(",") if name.strip()]
        return list(dict.fromkeys(listed)) or [self.engine.model]

    @property
    def default_model(self) -> str:
        return self.served_models[0]

    def apps_default_models(self) -> dict[str, str]:
        """VIREO_APP_MODELS as app → model."""
        pairs = (pair.partition(":") for pair in self.app_models.split(",") if pair.strip())
        return {app.strip(): model.strip() for app, _, model in pairs}

    def queue_for(self, model: str) -> str:
        """The Celery queue of a served model's workers: VIREO_QUEUE for the default model (so a one-model
        deployment keeps its queue), `<VIREO_QUEUE>.<model>` for each other one."""
        if model == self.default_model:
            return self.queue
        return f"{self.queue}.{re.sub(r'[^A-Za-z0-9_.-]+', '-', model).strip('-')[:100]}"

    def engine_for(self, model: str) -> EngineConfig:
        """The engine settings a worker of `model` builds: `engine`'s, with the model and its own overrides."""
        return EngineConfig.model_validate(
            {**self.engine.model_dump(), "model": model, **self.model_engines.get(model, {})}
        )

    def for_model(self, model: str) -> Settings:
        """These settings as one model's worker sees them: its engine and its queue."""
        return self.model_copy(update={"engine": self.engine_for(model), "queue": self.queue_for(model)})

    def for_worker(self) -> Settings:
        """The settings of this worker process: those of `worker_model` (default: the default model)."""
        return self.for_model(self.worker_model or self.default_model)

    @model_validator(mode="after")
    def _pool_is_consistent(self) -> Settings:
        served = self.served_models
        unknown = {app: model for app, model in self.apps_default_models().items() if model not in served}
        if unknown:
            raise ValueError(
                f"VIREO_APP_MODELS names models that VIREO_MODELS does not serve: {unknown}; "
                f"served: {', '.join(served)}"
            )
        if self.worker_model is not None and self.worker_model not in served:
            raise ValueError(
                f"this worker's model {self.worker_model!r} is not among VIREO_MODELS ({', '.join(served)})"
            )
        stray = set(self.model_engines) - set(served)
        if stray:
            raise ValueError(f"VIREO_MODEL_ENGINES sets models that VIREO_MODELS does not serve: {sorted(stray)}")
        if self.engine.model != self.default_model or self.default_model in self.model_engines:
            self.engine = self.engine_for(self.default_model)  # `engine` is the default model's outside a worker
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings, *with_engine_variables(settings_cls, dotenv_settings), file_secret_settings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
