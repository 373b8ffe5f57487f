"""Each tenant's RAG collections in a Chroma store of its own: a folder per tenant on disk, or a Chroma
tenant per Vireo tenant on a Chroma server.

Names alone kept tenants apart before: every collection sat in one folder (one SQLite file, one set of
index files) or in the server's default database, so a bug in a name check, or anything that reads
the folder, reached every tenant's documents. Now one tenant's data never shares a store with another's.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from urllib.parse import urlparse

SIMPLE_TENANT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
SERVER_DATABASE = "vireo"  # the database inside each tenant's Chroma tenant
TENANTS_FOLDER = "tenants"


def tenant_slug(tenant: str) -> str:
    """A folder and Chroma tenant name unique to the tenant: itself when simple, else '_' and a hash.

    Simple means lower case, so a case-insensitive filesystem cannot merge two tenants; a simple name
    never starts with '_', so it never equals another tenant's hash.
    """
    if SIMPLE_TENANT.match(tenant):
        return tenant
    return "_" + hashlib.sha256(tenant.encode()).hexdigest()[:32]


def chroma_settings(**server):
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False, allow_reset=False, **server)


class TenantStores:
    """One Chroma client per tenant, made on first use and kept: `TenantStores(path, url).client(tenant)`."""

    def __init__(self, path: Path, url: str | None = None):
        self.path = path
        self.url = url
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    def folder(self, tenant: str) -> Path:
        return self.path / TENANTS_FOLDER / tenant_slug(tenant)

    def server_tenant(self, tenant: str) -> str:
        return f"vireo-{tenant_slug(tenant)}"

    def client(self, tenant: str):
        with self._lock:
            if tenant not in self._clients:
                self._clients[tenant] = self._server_client(tenant) if self.url else self._local_client(tenant)
            return self._clients[tenant]

    def _local_client(self, tenant: str):
        import chromadb

        folder = self.folder(tenant)
        folder.mkdir(parents=True, exist_ok=True)
        for part in (self.path, folder.parent, folder):  # other users of the machine cannot read them
            part.chmod(0o700)
        return chromadb.PersistentClient(path=str(folder), settings=chroma_settings())

    def server_address(self) -> tuple[str, int, bool]:
        parsed = urlparse(self.url or "")
        ssl = parsed.scheme == "https"
        return parsed.hostname or "localhost", parsed.port or (443 if ssl else 8000), ssl

    def default_server_client(self):
        """The server's default tenant and database, where collections of every tenant used to live."""
        import chromadb

        host, port, ssl = self.server_address()
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=chroma_settings())

    def _server_client(self, tenant: str):
        import chromadb

        host, port, ssl = self.server_address()
        name = self.server_tenant(tenant)
        self._ensure_server_tenant(name)
        return chromadb.HttpClient(
            host=host, port=port, ssl=ssl, settings=chroma_settings(), tenant=name, database=SERVER_DATABASE
        )

    def _ensure_server_tenant(self, name: str) -> None:
        """Create the Chroma tenant and its database unless they exist (another process may race us)."""
        import chromadb

        host, port, ssl = self.server_address()
        admin = chromadb.AdminClient(
            chroma_settings(
                chroma_api_impl="chromadb.api.fastapi.FastAPI",
                chroma_server_host=host,
                chroma_server_http_port=port,
                chroma_server_ssl_enabled=ssl,
            )
        )
        for exists, create in (
            (lambda: admin.get_tenant(name), lambda: admin.create_tenant(name)),
            (
                lambda: admin.get_database(SERVER_DATABASE, tenant=name),
                lambda: admin.create_database(SERVER_DATABASE, tenant=name),
            ),
        ):
            try:
                exists()
            except Exception:  # chromadb raises NotFoundError; a race's loser then hits "already exists"
                try:
                    create()
                except Exception as exc:
                    if "already exists" not in str(exc).lower():
                        raise
