"""What route handlers take as parameters (FastAPI `Annotated` dependencies), instead of reading
`request.app.state` themselves. The app's lifespan builds an `ApiState` (state.py) once; each piece
of it is handed out here. The getters are async: FastAPI would run a plain `def` in its thread pool."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from vireo.apps.base import RouteDeps
from vireo.platform.api.auth import current_principal, current_tenant, rate_limited
from vireo.platform.api.error_docs import error_responses
from vireo.platform.api.state import ApiState, api_state
from vireo.platform.batches import BatchService
from vireo.platform.files import FileStore
from vireo.platform.jobs import JobService
from vireo.platform.keys import KeyStore, Principal
from vireo.platform.limits import Limiter
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore

StateDep = Annotated[ApiState, Depends(api_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_store(state: StateDep) -> JobStore:
    return state.store


async def get_jobs(state: StateDep) -> JobService:
    return state.jobs


async def get_limiter(state: StateDep) -> Limiter:
    return state.limiter


async def get_key_store(state: StateDep) -> KeyStore:
    return state.keys.store


async def get_files(state: StateDep) -> FileStore:
    return state.files


async def get_batches(state: StateDep) -> BatchService:
    return state.batches


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
LimiterDep = Annotated[Limiter, Depends(get_limiter)]
KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]
FilesDep = Annotated[FileStore, Depends(get_files)]
BatchesDep = Annotated[BatchService, Depends(get_batches)]
TenantDep = Annotated[str, Depends(current_tenant)]
AuthenticatedDep = Annotated[Principal, Depends(current_principal)]  # authenticated, not counted
PrincipalDep = Annotated[Principal, Depends(rate_limited)]  # authenticated and within its rate limit

# lent to the apps' own routes (App.router): apps import nothing of the platform
APP_ROUTE_DEPS = RouteDeps(tenant=current_tenant, rate_limited=rate_limited, error_responses=error_responses)
