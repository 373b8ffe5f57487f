"""`vireo keys create|list|revoke`: API keys in the platform's Redis, from the command line."""

from __future__ import annotations

import asyncio
import datetime
from typing import Optional

import typer
from redis.exceptions import ConnectionError as RedisConnectionError

from vireo.platform.keys import InvalidKeySpec, KeyLimits, KeyStore

keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


def _with_store(operation):
    """Run `operation(store)` against the Redis of the settings (REDIS_URL); a clear error if unreachable."""
    from vireo.platform.settings import get_settings

    redis_url = get_settings().redis_url

    async def go():
        store = KeyStore.connect(redis_url)
        try:
            return await operation(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except RedisConnectionError as exc:
        typer.echo(f"error: cannot reach Redis at {redis_url} (REDIS_URL): {exc}", err=True)
        raise typer.Exit(1) from None


@keys.command("create")
def create(
    tenant: str = typer.Option(..., help="Whose jobs and collections the key sees."),
    admin: bool = typer.Option(False, "--admin", help="May manage keys and read /metrics."),
    name: str = typer.Option("", help="A note: who or what uses the key."),
    rpm: Optional[int] = typer.Option(None, help="Requests per minute (default VIREO_RATE_LIMIT_RPM; 0 = no limit)."),
    concurrent: Optional[int] = typer.Option(
        None, help="Queued + running jobs of the tenant (default VIREO_MAX_CONCURRENT_JOBS; 0 = no limit)."
    ),
    tokens_per_day: Optional[int] = typer.Option(
        None, help="Tokens per UTC day for the tenant (default VIREO_TOKENS_PER_DAY; 0 = no limit)."
    ),
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    limits = KeyLimits(rpm=rpm, concurrent=concurrent, tokens_per_day=tokens_per_day)
    try:
        token, record = _with_store(lambda store: store.create(tenant, "admin" if admin else "user", name, limits))
    except InvalidKeySpec as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(
        f"created {record.role} key {record.id} for tenant {record.tenant}; it is shown once, store it now:", err=True
    )
    typer.echo(token)


@keys.command("list")
def list_keys() -> None:
    """Every key made with `vireo keys create` or the admin API (never the keys themselves)."""
    records = _with_store(lambda store: store.list())
    typer.echo(
        f"{'ID':12}  {'TENANT':16} {'ROLE':5} {'CREATED (UTC)':16}  {'STATE':7} {'RPM':>6} {'JOBS':>5} "
        f"{'TOKENS/DAY':>10}  NAME"
    )
    for r in records:
        created = datetime.datetime.fromtimestamp(r.created_at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        typer.echo(
            f"{r.id:12}  {r.tenant:16} {r.role:5} {created:16}  {'revoked' if r.revoked else 'active':7} "
            f"{_shown(r.limits.rpm):>6} {_shown(r.limits.concurrent):>5} "
            f"{_shown(r.limits.tokens_per_day):>10}  {r.name}"
        )


def _shown(limit: int | None) -> str:
    return "-" if limit is None else str(limit)  # "-": the setting's default applies


@keys.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (the part after vk_).")) -> None:
    """Revoke a key: it stops working within a few seconds."""
    record = _with_store(lambda store: store.revoke(key_id))
    if record is None:
        typer.echo(f"error: key {key_id} not found (`vireo keys list` shows the ids)", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked key {record.id} (tenant {record.tenant})")
