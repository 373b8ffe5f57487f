"""Submitting jobs: validate against the app, store the record, enqueue the Celery task."""

from __future__ import annotations

import logging
import threading
from functools import cached_property

from fastapi import HTTPException, status
from pydantic import ValidationError

from vireo.apps.base import AppInputError
from vireo.apps.registry import UnknownAppError, get_app, load_apps
from vireo.platform.celery_app import celery_app
from vireo.platform.metrics import JOBS_SUBMITTED
from vireo.platform.queue import TaskPublisher
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore

log = logging.getLogger(__name__)


class ModelLimits:
    """The served model's tokenizer and context length, so too-long input fails at submit time."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()

    @cached_property
    def _loaded(self) -> tuple[object, int] | None:
        try:
            import json

            from transformers import AutoTokenizer

            from vireo.inference.registry import ModelRegistry

            path = ModelRegistry(self.settings.home).resolve(self.settings.model).path
            context = json.loads((path / "config.json").read_text()).get("max_position_embeddings", 2048)
            if self.settings.max_model_len:
                context = min(context, self.settings.max_model_len)
            return AutoTokenizer.from_pretrained(path), context
        except Exception:  # a remote-only model: the worker checks length instead
            log.warning("no local tokenizer for %s; input length is checked by the worker", self.settings.model)
            return None

    def check(self, app, input) -> None:
        with self._lock:
            loaded = self._loaded
        if loaded is None:
            return
        tokenizer, context = loaded
        app.validate_for_engine(input, context,
                                lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]))


class JobService:
    def __init__(self, store: JobStore, settings: Settings):
        self.store = store
        self.settings = settings
        self.limits = ModelLimits(settings)
        self.publisher = TaskPublisher(celery_app, settings.queue)

    def warm_up(self) -> None:
        """Load the app plugins and the model's tokenizer now rather than on the first request."""
        load_apps()
        with self.limits._lock:
            _ = self.limits._loaded

    async def submit(self, tenant: str, app_name: str, input: dict, options: dict) -> str:
        """Create and enqueue a job; raises HTTPException with a clear message on bad input."""
        try:
            app = get_app(app_name)
        except UnknownAppError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        try:
            parsed = app.Input.model_validate(input)
        except ValidationError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                [{"loc": ["body", "input", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                 for e in exc.errors(include_url=False, include_context=False)]) from exc
        try:
            self.limits.check(app, parsed)
        except AppInputError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        job_id = await self.store.create(tenant, app.name, parsed.model_dump(mode="json"), options)
        self.publisher.publish(job_id, priority=max(0, min(9, (options.get("priority") or 0) + 5)))
        JOBS_SUBMITTED.labels(app=app.name).inc()
        return job_id
