"""Move collections out of the store every tenant once shared, each into its tenant's own store.

Before per-tenant stores, all collections lived in one Chroma folder (`<home>/chroma/chroma.sqlite3`
and its index folders) or in a Chroma server's default database, named `<tenant>.<name>` with the
tenant in their metadata. On first use the store copies each such collection, vectors included (no
re-embedding), into its tenant's store and verifies the count. Then the old data is made inert:
the old folder's files move to `<home>/chroma/shared-store.migrated/` (kept for the operator to check
and delete: it still holds every tenant's documents); on a server the old collection is deleted.
A collection whose tenant cannot be told is left where it was, and logged.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from vireo.apps.rag.tenant_stores import TENANTS_FOLDER, TenantStores, chroma_settings

log = logging.getLogger(__name__)
MIGRATED_FOLDER = "shared-store.migrated"  # holds a '.', which no tenant folder name has
BATCH = 500


def migrate_shared_store(stores: TenantStores, tenant_of) -> None:
    """Copy the shared store's collections into per-tenant stores, if there is a shared store.

    `tenant_of(collection)` names a collection's tenant, or None when it is not a Vireo collection.
    """
    if stores.url:
        _migrate_server(stores, tenant_of)
    elif (stores.path / "chroma.sqlite3").exists():
        _migrate_folder(stores, tenant_of)


def _migrate_folder(stores: TenantStores, tenant_of) -> None:
    import chromadb

    stores.path.chmod(0o700)
    with _exclusive(stores.path / ".migration.lock"):
        if not (stores.path / "chroma.sqlite3").exists():
            return  # another process (the API or a worker) migrated it while we waited
        shared = chromadb.PersistentClient(path=str(stores.path), settings=chroma_settings())
        try:
            moved, left = _copy_all(shared, stores, tenant_of)
        finally:
            # chromadb types PersistentClient as ClientAPI, which lacks close(); it returns a Client, which has it
            shared.close()  # type: ignore[attr-defined]
        aside = stores.path / MIGRATED_FOLDER
        aside.mkdir(mode=0o700, exist_ok=True)
        for entry in stores.path.iterdir():
            if entry.name not in (TENANTS_FOLDER, MIGRATED_FOLDER, ".migration.lock"):
                shutil.move(str(entry), str(aside / entry.name))
        log.warning(
            "RAG: moved %d collections from the shared store %s into per-tenant stores under %s; "
            "the old files are in %s (they hold every tenant's documents: delete them once checked)%s",
            moved,
            stores.path,
            stores.path / TENANTS_FOLDER,
            aside,
            f"; left there, tenant unknown: {', '.join(left)}" if left else "",
        )


def _migrate_server(stores: TenantStores, tenant_of) -> None:
    shared = stores.default_server_client()
    moved, left = _copy_all(shared, stores, tenant_of, delete_after=True)
    if moved:
        log.warning(
            "RAG: moved %d collections from the Chroma server's default database into one Chroma "
            "tenant per Vireo tenant",
            moved,
        )
    if left:
        log.warning("RAG: collections in the default database with no Vireo tenant, left alone: %s", ", ".join(left))


def _copy_all(shared, stores: TenantStores, tenant_of, delete_after: bool = False) -> tuple[int, list[str]]:
    moved, left = 0, []
    for collection in shared.list_collections():
        tenant = tenant_of(collection)
        if tenant is None:
            left.append(collection.name)
            continue
        _copy(collection, stores.client(tenant))
        if delete_after:
            shared.delete_collection(collection.name)
        moved += 1
    return moved, left


def _copy(source, target_client) -> None:
    """Copy ids, texts, vectors and metadata in batches; upsert, so a copy interrupted and redone is whole."""
    target = target_client.get_or_create_collection(source.name, embedding_function=None, metadata=source.metadata)
    offset = 0
    while True:
        got = source.get(include=["documents", "embeddings", "metadatas"], limit=BATCH, offset=offset)
        if not got["ids"]:
            break
        target.upsert(
            ids=got["ids"], documents=got["documents"], embeddings=got["embeddings"], metadatas=got["metadatas"]
        )
        offset += len(got["ids"])
    if target.count() != source.count():
        raise RuntimeError(
            f"copying RAG collection {source.name} into its tenant's store: "
            f"{target.count()} of {source.count()} chunks arrived; the shared store is untouched"
        )


@contextmanager
def _exclusive(path: Path):
    """A file lock across processes: the API and each worker open the store at start."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
