"""API keys: stored only as hashes, resolved to a tenant and role, revocable; admin vs user; the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
from typer.testing import CliRunner

from tests.conftest import API_KEY, OTHER_KEY
from vireo.platform.cli import app as cli_app
from vireo.platform.keys import InvalidKeySpec, KeyLimits, KeyRing, KeyStore
from vireo.platform.settings import Settings, get_settings

KEYS_REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture(scope="module", autouse=True)
def clean_db():
    redis.Redis.from_url(KEYS_REDIS_URL).flushdb()
    yield
    redis.Redis.from_url(KEYS_REDIS_URL).flushdb()


@pytest_asyncio.fixture
async def store():
    store = KeyStore(aioredis.from_url(KEYS_REDIS_URL, decode_responses=True))
    yield store
    await store.close()


def everything_in_redis() -> str:
    """Every key name and value in the test database, as one string to search."""
    client = redis.Redis.from_url(KEYS_REDIS_URL, decode_responses=True)
    parts = []
    for name in client.scan_iter():
        kind = client.type(name)
        value = {
            "hash": client.hgetall,
            "zset": lambda n: client.zrange(n, 0, -1, withscores=True),
            "string": client.get,
            "set": client.smembers,
        }[kind](name)
        parts.append(f"{name}={value}")
    return "\n".join(parts)


async def test_a_key_is_stored_only_as_its_hash(store):
    token, record = await store.create("acme", name="ci")
    _, key_id, secret = token.split("_", 2)
    assert token.startswith("vk_") and key_id == record.id and len(secret) == 40
    stored = everything_in_redis()
    assert token not in stored and secret not in stored
    assert hashlib.sha256(token.encode()).hexdigest() in stored


async def test_a_key_resolves_to_its_tenant_role_and_limits(store):
    token, record = await store.create("acme", "admin", limits=KeyLimits(rpm=5, tokens_per_day=0))
    principal = await store.resolve(token)
    assert (principal.tenant, principal.role, principal.key_id) == ("acme", "admin", record.id)
    assert principal.limits == KeyLimits(rpm=5, concurrent=None, tokens_per_day=0)


async def test_a_wrong_secret_or_unknown_id_does_not_resolve(store):
    token, _ = await store.create("acme")
    assert await store.resolve(token[:-1] + ("x" if token[-1] != "x" else "y")) is None
    assert await store.resolve("vk_000000000000_" + token.split("_", 2)[2]) is None
    assert await store.resolve("not-a-vireo-key") is None


async def test_a_revoked_key_stops_working_once_the_cache_expires(store):
    ring = KeyRing(store, {}, cache_s=0.3)
    token, record = await store.create("acme")
    assert (await ring.resolve(token)).key_id == record.id
    assert (await store.revoke(record.id)).revoked
    await asyncio.sleep(0.4)
    assert await ring.resolve(token) is None
    assert await store.revoke("000000000000") is None


async def test_settings_keys_are_the_bootstrap_admin_and_user_keys(store):
    settings = Settings(api_key="boot-key", api_keys="user-one:tenant-x, user-two:tenant-y")
    ring = KeyRing.from_settings(store, settings)
    admin, user = await ring.resolve("boot-key"), await ring.resolve("user-two")
    assert (admin.tenant, admin.role) == ("default", "admin")
    assert (user.tenant, user.role) == ("tenant-y", "user")
    assert await ring.resolve("user-three") is None


@pytest.mark.parametrize(
    "tenant, role, limits, message",
    [
        ("../etc", "user", KeyLimits(), "tenant"),
        ("acme", "root", KeyLimits(), "role"),
        ("acme", "user", KeyLimits(rpm=-1), "rpm"),
    ],
)
async def test_a_bad_key_spec_is_refused(store, tenant, role, limits, message):
    with pytest.raises(InvalidKeySpec, match=message):
        await store.create(tenant, role, limits=limits)


# --- over REST (the session's API: VIREO_API_KEY is its admin, VIREO_API_KEYS its user keys) -----
def admin_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)


def test_admin_creates_a_key_that_works_and_revokes_it(api_server):
    with admin_client(api_server) as admin:
        created = admin.post("/v1/admin/keys", json={"tenant": "tenant-k", "name": "rest test", "rpm": 50})
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["id"]
        listed = {k["id"]: k for k in admin.get("/v1/admin/keys").json()["keys"]}
        assert listed[key_id]["tenant"] == "tenant-k" and "key" not in listed[key_id]
        headers = {"Authorization": f"Bearer {key}"}
        limits = httpx.get(f"{api_server}/v1/limits", headers=headers).json()
        assert limits["tenant"] == "tenant-k" and limits["requests_per_minute"]["limit"] == 50
        assert admin.delete(f"/v1/admin/keys/{key_id}").json()["revoked"] is True
    deadline = time.time() + 10  # the API caches a valid key for 2 s
    while httpx.get(f"{api_server}/v1/limits", headers=headers).status_code != 401:
        assert time.time() < deadline, "a revoked key still works after 10 s"
        time.sleep(0.2)


def test_a_user_key_gets_403_on_admin_endpoints(api_server):
    headers = {"Authorization": f"Bearer {OTHER_KEY}"}
    replies = [
        httpx.get(f"{api_server}/v1/admin/keys", headers=headers),
        httpx.post(f"{api_server}/v1/admin/keys", headers=headers, json={"tenant": "tenant-b", "role": "admin"}),
        httpx.delete(f"{api_server}/v1/admin/keys/whatever", headers=headers),
        httpx.get(f"{api_server}/metrics", headers=headers),
    ]
    for reply in replies:
        assert reply.status_code == 403, reply.text
        assert "needs an admin key" in reply.json()["detail"] and "tenant-b" in reply.json()["detail"]
    assert httpx.get(f"{api_server}/v1/apps", headers=headers).status_code == 200


def test_an_admin_reads_metrics(api_server):
    with admin_client(api_server) as admin:
        assert "vireo_jobs_submitted_total" in admin.get("/metrics").text


# --- the CLI -------------------------------------------------------------------------------
@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("REDIS_URL", KEYS_REDIS_URL)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def resolve(token: str):
    store = KeyStore.connect(KEYS_REDIS_URL)
    try:
        return await store.resolve(token)
    finally:
        await store.close()


def test_cli_creates_lists_and_revokes_keys(cli):
    created = cli.invoke(
        cli_app, ["keys", "create", "--tenant", "cli-tenant", "--admin", "--name", "ops", "--rpm", "7"]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    key_id = token.split("_")[1]
    assert token.startswith("vk_") and f"admin key {key_id}" in created.stderr
    principal = asyncio.run(resolve(token))
    assert (principal.tenant, principal.role, principal.limits.rpm) == ("cli-tenant", "admin", 7)
    listed = cli.invoke(cli_app, ["keys", "list"])
    line = next(row for row in listed.stdout.splitlines() if row.startswith(key_id))
    assert "cli-tenant" in line and "active" in line and token not in listed.stdout
    assert cli.invoke(cli_app, ["keys", "revoke", key_id]).exit_code == 0
    listed = cli.invoke(cli_app, ["keys", "list"]).stdout.splitlines()
    assert "revoked" in next(r for r in listed if r.startswith(key_id))


def test_cli_explains_bad_input(cli):
    missing = cli.invoke(cli_app, ["keys", "revoke", "000000000000"])
    assert missing.exit_code == 1 and "not found" in missing.stderr
    bad = cli.invoke(cli_app, ["keys", "create", "--tenant", "no spaces please"])
    assert bad.exit_code != 0 and "tenant" in bad.output
