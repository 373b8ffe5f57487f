"""Bearer-key authentication: every key maps to a tenant; jobs belong to their key's tenant."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")


async def current_tenant(request: Request,
                   credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> str:
    """The tenant of the request's API key; 401 with a clear message otherwise.

    Async on purpose: a plain `def` dependency would hop to the thread pool on every request.
    """
    if credentials is None or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "missing API key: send the header 'Authorization: Bearer <key>'",
                            headers={"WWW-Authenticate": "Bearer"})
    keys: dict[str, str] = request.app.state.tenants_by_key
    for key, tenant in keys.items():
        if hmac.compare_digest(key.encode(), credentials.credentials.encode()):
            return tenant
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid API key",
                        headers={"WWW-Authenticate": "Bearer"})
