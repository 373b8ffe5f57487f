"""What route handlers take as parameters (FastAPI `Annotated` dependencies), instead of reading
`request.app.state` themselves. `app.py` builds these objects once at start-up; each is read here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from vireo.platform.api.auth import current_tenant, rate_limited
from vireo.platform.jobs import JobService
from vireo.platform.keys import Principal
from vireo.platform.settings import Settings
from vireo.platform.store import JobStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> JobStore:
    return request.app.state.store


def get_jobs(request: Request) -> JobService:
    return request.app.state.jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
TenantDep = Annotated[str, Depends(current_tenant)]
PrincipalDep = Annotated[Principal, Depends(rate_limited)]  # authenticated and within its rate limit
