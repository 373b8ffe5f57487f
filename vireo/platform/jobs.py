"""Submitting jobs: validate against the app, store the record, enqueue the Celery task."""

from __future__ import annotations

import time

from pydantic import ValidationError

from vireo.apps.base import AppInputError
from vireo.apps.registry import UnknownAppError, get_app, load_apps
from vireo.platform.celery_app import celery_app
from vireo.platform.errors import InvalidInput, UnknownApp, UnknownModel
from vireo.platform.input_limits import ModelLimits, unrepresentable_number
from vireo.platform.job_outcome import report_from_store
from vireo.platform.keys import Principal
from vireo.platform.limits import Limiter
from vireo.platform.metrics import JOBS_SUBMITTED
from vireo.platform.queue import TaskPublisher, broker_priority
from vireo.platform.served_model import find_served, served_model, served_models
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore


class JobService:
    def __init__(self, store: JobStore, settings: Settings, limiter: Limiter):
        self.store = store
        self.settings = settings
        self.limiter = limiter
        # each served model's tokenizer and context, for the submit-time length check
        self.limits = {model: ModelLimits(settings.for_model(model)) for model in settings.served_models}
        self.publisher = TaskPublisher(celery_app, settings.queue)

    def warm_up(self) -> None:
        """Load the app plugins and the models' tokenizers, and name the served models (a GGUF file not yet
        in the registry's index is hashed), now rather than on the event loop of the first request."""
        load_apps()
        for limits in self.limits.values():
            limits.load()
        served_models(self.settings)

    def model_for(self, app_name: str, requested: str | None) -> str:
        """The served model a job runs on: the one it names (by any name `/v1/models` answers to), else its
        app's default (VIREO_APP_MODELS), else the default model. UnknownModel when none is served."""
        if requested is None:
            return self.settings.apps_default_models().get(app_name, self.settings.default_model)
        found = find_served(self.settings, requested)
        if found is None:
            names = ", ".join(served.name for served in served_models(self.settings))
            raise UnknownModel(f"model {requested!r} is not served here; this server serves {names}")
        return found.configured

    async def submit(
        self, principal: Principal, app_name: str, input: dict, options: dict, model: str | None = None
    ) -> str:
        """Create and enqueue a job for the principal's tenant on the queue of its model (`model_for`);
        raises UnknownApp, UnknownModel or InvalidInput (vireo.platform.errors) with a clear message on bad
        input, LimitExceeded when the tenant is at its concurrency or token limit. A model whose workers are
        all away keeps its jobs queued until one is back."""
        try:
            app = get_app(app_name)
        except UnknownAppError as exc:
            raise UnknownApp(str(exc)) from exc
        if (bad := unrepresentable_number(input)) is not None:
            path, why = bad
            raise InvalidInput([{"loc": ["body", "input", *path], "msg": f"Value {why}", "type": "number_range"}])
        try:
            parsed = app.Input.model_validate(input)
        except ValidationError as exc:
            raise InvalidInput(
                [
                    {"loc": ["body", "input", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False, include_context=False)
                ]
            ) from exc
        served = self.model_for(app.name, model)
        try:
            await self.limits[served].check(app, parsed)
        except AppInputError as exc:
            raise InvalidInput(str(exc)) from exc
        now = time.time()
        job_id = await self.limiter.admit_job(principal, now)
        queue, name = self.settings.queue_for(served), served_model(self.settings, served).name
        try:
            delivery = self.publisher.delivery_commands(job_id, priority=broker_priority(options), queue=queue)
            await self.store.create(
                principal.tenant,
                app.name,
                parsed.model_dump(mode="json"),
                options,
                job_id,
                now,
                model=name,
                queue=queue,
                deliver=delivery,
            )
        except Exception:  # (the API answers 503): the tenant's place is not held by a job that does not exist
            await self.limiter.release_unstored(principal, job_id)
            raise
        JOBS_SUBMITTED.labels(app=app.name).inc()
        return job_id

    async def cancel(self, job_id: str) -> str:
        """Cancel a job (store.request_cancel); one still queued ends here, so it is logged and counted here."""
        if await self.store.cancel_queued(job_id):
            await report_from_store(self.store, job_id, self.settings.default_model, {"id": job_id}, "cancelled")
            return "cancelled"
        return await self.store.request_cancel(job_id)
