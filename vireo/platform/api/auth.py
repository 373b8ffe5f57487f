"""Bearer-key authentication: a key resolves to a principal (tenant, role, key id) and its limits.

Jobs and collections belong to the key's tenant. Admin keys may also manage keys and read operator
endpoints; a user key gets 403 there. Routes that create work count against the key's requests per
minute (`rate_limited`), answered 429 with `Retry-After` once over.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vireo.platform.api.state import ApiState, api_state
from vireo.platform.keys import Principal

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")


async def current_principal(
    request: Request,
    state: ApiState = Depends(api_state),
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """Who the request's API key belongs to; 401 with a clear message otherwise.

    Async on purpose: a plain `def` dependency would hop to the thread pool on every request.
    """
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send the header 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await state.keys.resolve(credentials.credentials)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal  # for the request's log line (request_log.py)
    return principal


async def current_tenant(principal: Principal = Depends(current_principal)) -> str:
    return principal.tenant


async def require_admin(principal: Principal = Depends(current_principal)) -> Principal:
    if not principal.is_admin:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this endpoint needs an admin key; key {principal.key_id} is a user key of tenant "
            f"{principal.tenant} (an admin creates admin keys with `vireo keys create --admin`)",
        )
    return principal


async def metrics_reader(
    request: Request,
    state: ApiState = Depends(api_state),
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> None:
    """`/metrics` opens to an admin key, or to `VIREO_METRICS_TOKEN`, which opens nothing else: a Prometheus
    scrape config then holds no key that could manage keys or read tenants' jobs (docs/OPERATIONS.md)."""
    token = state.settings.metrics_token
    if token and credentials and hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        return
    await require_admin(await current_principal(request, state, credentials))


async def rate_limited(
    response: Response, state: ApiState = Depends(api_state), principal: Principal = Depends(current_principal)
) -> Principal:
    """Count this request against the key's per-minute limit; the reply carries X-RateLimit-* headers."""
    window = await state.limiter.hit(principal)
    if window is not None:
        response.headers.update(window.headers())
    return principal
