"""Uploaded files (OpenAI's `/v1/files`): bytes on disk under `VIREO_HOME/files/<tenant>/`, metadata in Redis.

A file belongs to the tenant that uploaded it; to any other tenant it does not exist. Its size is
bounded by the API's request body limit (`VIREO_MAX_BODY_BYTES`, answered 413 before the upload is
read), so a file is small enough to read whole. The disk is shared by every API process of one
deployment (one host, or a shared volume): batch results are written there by whichever process
holds the batch lease.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from vireo.platform.keys import TENANT_PATTERN
from vireo.platform.redis_keys import file_key, tenant_files_key

PURPOSES = ("batch", "batch_output")  # what a client may upload: "batch"; the rest are written by Vireo


class FileStore:
    """Create, read, list and delete a tenant's files."""

    def __init__(self, redis: aioredis.Redis, home: Path):
        self.redis = redis
        self.root = home / "files"

    def _path(self, tenant: str, file_id: str) -> Path:
        if not TENANT_PATTERN.match(tenant) or not file_id.replace("-", "").isalnum():
            raise ValueError(f"tenant {tenant!r} or file id {file_id!r} cannot name a folder")
        return self.root / tenant / file_id

    async def create(self, tenant: str, purpose: str, filename: str, content: bytes) -> dict[str, Any]:
        """Store `content` and return its OpenAI file object."""
        file_id = f"file-{uuid.uuid4().hex}"
        path = self._path(tenant, file_id)
        await asyncio.to_thread(_write, path, content)
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "tenant": tenant,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(file_key(file_id), mapping=record)
            pipe.zadd(tenant_files_key(tenant), {file_id: time.time()})
            await pipe.execute()
        return _public(record)

    async def get(self, tenant: str, file_id: str) -> dict[str, Any] | None:
        """The file object, or None if the tenant has no such file."""
        raw = await self.redis.hgetall(file_key(file_id))
        if not raw or raw.get("tenant") != tenant:
            return None
        return _public(raw)

    async def content(self, tenant: str, file_id: str) -> bytes | None:
        if await self.get(tenant, file_id) is None:
            return None
        try:
            return await asyncio.to_thread(self._path(tenant, file_id).read_bytes)
        except FileNotFoundError:
            return None

    async def list(
        self, tenant: str, purpose: str | None = None, limit: int = 10_000, after: str | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's files, newest first, starting after the file id `after` (a cursor)."""
        ids = await self.redis.zrevrange(tenant_files_key(tenant), 0, -1)
        if after in ids:
            ids = ids[ids.index(after) + 1 :]
        files = []
        for file_id in ids:
            found = await self.get(tenant, file_id)
            if found and (purpose is None or found["purpose"] == purpose):
                files.append(found)
                if len(files) >= limit:
                    break
        return files

    async def delete(self, tenant: str, file_id: str) -> bool:
        if await self.get(tenant, file_id) is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(file_key(file_id))
            pipe.zrem(tenant_files_key(tenant), file_id)
            await pipe.execute()
        await asyncio.to_thread(self._path(tenant, file_id).unlink, True)
        return True


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(content)
    partial.replace(path)  # a reader never sees half a file


def _public(raw: dict) -> dict[str, Any]:
    return {
        "id": raw["id"],
        "object": "file",
        "bytes": int(raw["bytes"]),
        "created_at": int(raw["created_at"]),
        "filename": raw["filename"],
        "purpose": raw["purpose"],
        "status": "processed",
        "expires_at": None,
    }
