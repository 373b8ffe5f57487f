"""What one API process holds: its settings and the services built from them, in one typed object.

`ApiState.open` builds them (the app's lifespan calls it, and so may a test that mounts a single
router); `app.state.vireo` holds the result. Route handlers never read `app.state` themselves: they
take these objects as parameters through the dependencies in `deps.py`, which read them here.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from vireo.platform.batches import BatchService
from vireo.platform.files import FileStore
from vireo.platform.jobs import JobService
from vireo.platform.keys import KeyRing, KeyStore
from vireo.platform.limits import Limiter
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    store: JobStore  # jobs, their events, engine stats; its Redis client is the one every service shares
    jobs: JobService  # submitting and cancelling jobs
    keys: KeyRing  # bearer key → principal
    limiter: Limiter  # per-key and per-tenant limits
    files: FileStore  # OpenAI Files API uploads and batch outputs
    batches: BatchService  # OpenAI Batch API records

    @classmethod
    def open(cls, settings: Settings) -> "ApiState":
        store = JobStore(settings.redis_url, settings.job_ttl_s, settings.events_maxlen)
        limiter = Limiter(store.redis, settings)
        files = FileStore(store.redis, settings.home)
        return cls(
            settings=settings,
            store=store,
            jobs=JobService(store, settings, limiter),
            keys=KeyRing.from_settings(KeyStore(store.redis), settings),
            limiter=limiter,
            files=files,
            batches=BatchService(store.redis, files),
        )

    async def close(self) -> None:
        await self.store.close()


async def api_state(request: Request) -> ApiState:
    """A dependency (async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request)."""
    state: ApiState = request.app.state.vireo
    return state
