"""Admin routes: create, list and revoke API keys (admin keys only; a user key gets 403)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from vireo.platform.api.auth import require_admin
from vireo.platform.api.deps import KeyStoreDep
from vireo.platform.api.error_docs import error_responses
from vireo.platform.keys import KeyLimits, KeyRecord

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

Limit = Annotated[int, Field(ge=0, le=10**12)]


class KeyCreate(BaseModel):
    tenant: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Whose jobs and collections the key sees.",
    )
    role: Literal["admin", "user"] = "user"
    name: str = Field("", max_length=100, description="A note for people: who or what uses the key.")
    rpm: Limit | None = Field(None, description="Requests per minute; unset: VIREO_RATE_LIMIT_RPM; 0: none.")
    concurrent: Limit | None = Field(
        None, description="Queued + running jobs of the tenant; unset: VIREO_MAX_CONCURRENT_JOBS; 0: unlimited."
    )
    tokens_per_day: Limit | None = Field(
        None, description="Tokens per UTC day for the tenant; unset: VIREO_TOKENS_PER_DAY; 0: unlimited."
    )


class KeyView(BaseModel):
    id: str
    tenant: str
    role: str
    name: str
    created_at: float
    revoked: bool
    rpm: int | None
    concurrent: int | None
    tokens_per_day: int | None

    @classmethod
    def of(cls, record: KeyRecord) -> "KeyView":
        return cls(
            id=record.id,
            tenant=record.tenant,
            role=record.role,
            name=record.name,
            created_at=record.created_at,
            revoked=record.revoked,
            rpm=record.limits.rpm,
            concurrent=record.limits.concurrent,
            tokens_per_day=record.limits.tokens_per_day,
        )


class KeyCreated(KeyView):
    key: str = Field(..., description="The key itself: shown here once, stored only as a hash.")


class KeyList(BaseModel):
    keys: list[KeyView]


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
async def create_key(body: KeyCreate, store: KeyStoreDep) -> KeyCreated:
    token, record = await store.create(
        body.tenant,
        body.role,
        body.name,
        KeyLimits(rpm=body.rpm, concurrent=body.concurrent, tokens_per_day=body.tokens_per_day),
    )
    return KeyCreated(**KeyView.of(record).model_dump(), key=token)


@router.get("/keys", response_model=KeyList)
async def list_keys(store: KeyStoreDep) -> KeyList:
    return KeyList(keys=[KeyView.of(record) for record in await store.list()])


@router.delete("/keys/{key_id}", response_model=KeyView, responses=error_responses(404))
async def revoke_key(key_id: str, store: KeyStoreDep) -> KeyView:
    record = await store.revoke(key_id)
    if record is None:
        hint = (
            " (keys from VIREO_API_KEY/VIREO_API_KEYS are changed in the settings)"
            if key_id.startswith("settings-")
            else ""
        )
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"key {key_id} not found{hint}")
    return KeyView.of(record)
