"""API keys: random tokens stored only as hashes in Redis, each with a tenant, a role and limits.

A key reads `vk_<id>_<secret>`: the id is public (it names the key in lists, logs and `revoke`),
the secret is 40 random letters and digits (~238 bits), so a plain sha256 is a safe hash for it.
A lookup is one Redis `HGETALL` by id, then a constant-time compare of the hashes. The keys in
settings keep working: `VIREO_API_KEY` is the bootstrap admin key, `VIREO_API_KEYS` adds user keys;
both are held only as hashes in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from vireo.platform.redis_keys import KEYS_INDEX, record_key

ROLES = ("admin", "user")
PREFIX = "vk_"
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 40
_LIMIT_FIELDS = ("rpm", "concurrent", "tokens_per_day")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvalidKeySpec(ValueError):
    """A key cannot be created as asked (bad tenant, role or limit)."""


@dataclass(frozen=True)
class KeyLimits:
    """Per-key overrides of the settings' limits; None = the setting, 0 = unlimited."""

    rpm: int | None = None
    concurrent: int | None = None
    tokens_per_day: int | None = None


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant whose jobs they see, their role, the key they used."""

    tenant: str
    role: str
    key_id: str
    limits: KeyLimits = field(default_factory=KeyLimits)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class KeyRecord:
    """What is stored about a key (never the key itself)."""

    id: str
    tenant: str
    role: str
    name: str
    created_at: float
    revoked: bool
    limits: KeyLimits

    def principal(self) -> Principal:
        return Principal(tenant=self.tenant, role=self.role, key_id=self.id, limits=self.limits)


def _optional_int(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


def _record_from(raw: dict[str, str]) -> KeyRecord:
    return KeyRecord(
        id=raw["id"],
        tenant=raw["tenant"],
        role=raw["role"],
        name=raw.get("name", ""),
        created_at=float(raw["created_at"]),
        revoked=raw.get("revoked") == "1",
        limits=KeyLimits(**{f: _optional_int(raw.get(f)) for f in _LIMIT_FIELDS}),
    )


class KeyStore:
    """Keys in Redis: create (returns the raw key once), list, revoke, and resolve a presented key."""

    def __init__(self, redis: aioredis.Redis):
        self.redis = redis

    @classmethod
    def connect(cls, redis_url: str) -> "KeyStore":
        return cls(aioredis.from_url(redis_url, decode_responses=True, socket_connect_timeout=5))

    async def close(self) -> None:
        await self.redis.aclose()

    async def create(
        self, tenant: str, role: str = "user", name: str = "", limits: KeyLimits = KeyLimits()
    ) -> tuple[str, KeyRecord]:
        """A new key; the raw token is returned here and nowhere else, ever."""
        if not TENANT_PATTERN.match(tenant):
            raise InvalidKeySpec(
                f"tenant {tenant!r} is not valid: 1-64 letters, digits, '.', '-' or '_', "
                "starting with a letter or digit"
            )
        if role not in ROLES:
            raise InvalidKeySpec(f"role {role!r} is not valid: choose 'admin' or 'user'")
        for limit_name in _LIMIT_FIELDS:
            value = getattr(limits, limit_name)
            if value is not None and value < 0:
                raise InvalidKeySpec(f"{limit_name} must be 0 (unlimited) or more, not {value}")
        key_id = secrets.token_hex(6)
        token = f"{PREFIX}{key_id}_{''.join(secrets.choice(_ALPHABET) for _ in range(_SECRET_LENGTH))}"
        record = KeyRecord(
            id=key_id, tenant=tenant, role=role, name=name[:100], created_at=time.time(), revoked=False, limits=limits
        )
        fields = {
            "id": key_id,
            "hash": digest(token),
            "tenant": tenant,
            "role": role,
            "name": record.name,
            "created_at": record.created_at,
            "revoked": 0,
            **{f: "" if getattr(limits, f) is None else getattr(limits, f) for f in _LIMIT_FIELDS},
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(record_key(key_id), mapping=fields)
            pipe.zadd(KEYS_INDEX, {key_id: record.created_at})
            await pipe.execute()
        return token, record

    async def get(self, key_id: str) -> KeyRecord | None:
        raw = await self.redis.hgetall(record_key(key_id))
        return _record_from(raw) if raw else None

    async def list(self) -> list[KeyRecord]:
        records = []
        for key_id in await self.redis.zrange(KEYS_INDEX, 0, -1):
            if (record := await self.get(key_id)) is not None:
                records.append(record)
        return records

    async def revoke(self, key_id: str) -> KeyRecord | None:
        """Mark the key revoked (kept for the record); None if there is no such key."""
        if not await self.redis.exists(record_key(key_id)):
            return None
        await self.redis.hset(record_key(key_id), "revoked", 1)
        return await self.get(key_id)

    async def resolve(self, token: str) -> Principal | None:
        """The principal of a `vk_` token, or None if it is unknown, wrong or revoked."""
        key_id, _, secret = token.removeprefix(PREFIX).partition("_")
        if not token.startswith(PREFIX) or not key_id.isalnum() or not secret:
            return None
        raw = await self.redis.hgetall(record_key(key_id))
        if not raw or not hmac.compare_digest(raw.get("hash", ""), digest(token)) or raw.get("revoked") == "1":
            return None
        return _record_from(raw).principal()


class KeyRing:
    """Resolves a bearer token: the settings' keys (hashes in memory) first, then the key store.

    Valid Redis keys are cached for `cache_s` seconds (a revoked key stops working within that);
    unknown tokens are never cached, so garbage cannot grow the cache.
    """

    def __init__(self, store: KeyStore, settings_keys: dict[str, Principal], cache_s: float = 2.0):
        self.store = store
        self._settings = [(digest(key), principal) for key, principal in settings_keys.items()]
        self.cache_s = cache_s
        self._cache: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def from_settings(cls, store: KeyStore, settings, cache_s: float = 2.0) -> "KeyRing":
        """`VIREO_API_KEY` is the bootstrap admin (tenant "default"); `VIREO_API_KEYS` are user keys."""
        extra = [(key, tenant) for key, tenant in settings.tenants_by_key().items() if key != settings.api_key]
        keys = {
            key: Principal(tenant=tenant, role="user", key_id=f"settings-{i}")
            for i, (key, tenant) in enumerate(extra, start=1)
        }
        keys[settings.api_key] = Principal(tenant="default", role="admin", key_id="settings-admin")
        return cls(store, keys, cache_s)

    async def resolve(self, token: str) -> Principal | None:
        hashed = digest(token)
        found = None
        for known, principal in self._settings:  # every entry compared: no timing hint of which matched
            if hmac.compare_digest(known, hashed):
                found = principal
        if found is not None:
            return found
        cached = self._cache.get(hashed)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        resolved = await self.store.resolve(token)
        if resolved is None:
            self._cache.pop(hashed, None)
        else:
            self._cache[hashed] = (resolved, time.monotonic() + self.cache_s)
        return resolved
