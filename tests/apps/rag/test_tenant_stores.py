"""Each tenant's collections live in a store of its own (a folder, or a Chroma tenant on a server), and a
store shared by every tenant from before is moved out, once. Real Chroma: a folder and `chroma run`."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from vireo.apps.rag import CollectionStore
from vireo.apps.rag.shared_store_migration import MIGRATED_FOLDER
from vireo.apps.rag.store import NAME_KEY, TENANT_KEY
from vireo.apps.rag.tenant_stores import SERVER_DATABASE, chroma_settings, tenant_slug

pytestmark = pytest.mark.stack  # starts a Chroma server

VECTORS = {"doc#0": [1.0, 0.0, 0.0, 0.0], "doc#1": [0.0, 1.0, 0.0, 0.0], "doc#2": [0.0, 0.0, 1.0, 0.0]}


def collections_in_folder(folder: Path) -> list[str]:
    import chromadb

    client = chromadb.PersistentClient(path=str(folder), settings=chroma_settings())
    try:
        return sorted(c.name for c in client.list_collections())
    finally:
        client.close()


def old_collection(client, tenant: str | None, name: str) -> None:
    """A collection as the shared store kept it: `<tenant>.<name>`, tenant in metadata, 3 chunks."""
    metadata = {"hnsw:space": "cosine", NAME_KEY: name, **({TENANT_KEY: tenant} if tenant else {})}
    collection = client.create_collection(f"{tenant or 'nobody'}.{name}", embedding_function=None, metadata=metadata)
    collection.add(
        ids=list(VECTORS),
        embeddings=list(VECTORS.values()),
        documents=[f"{name} chunk {i}" for i in range(3)],
        metadatas=[{"doc_id": "doc", "chunk": i} for i in range(3)],
    )


def test_each_tenant_has_a_folder_of_its_own(tmp_path):
    store = CollectionStore(path=tmp_path / "chroma")
    store.create("acme", "handbook")
    store.create("globex", "handbook")
    tenants = tmp_path / "chroma" / "tenants"
    assert collections_in_folder(tenants / "acme") == ["acme.handbook"]
    assert collections_in_folder(tenants / "globex") == ["globex.handbook"]
    assert sorted(p.name for p in tenants.iterdir()) == ["acme", "globex"]
    assert (tenants / "acme").stat().st_mode & 0o077 == 0, "another user of the machine could read it"


def test_names_that_differ_only_in_case_or_carry_dots_get_distinct_folders(tmp_path):
    tenants = ["Acme", "acme", "tenant.with.dots", "h" + "0" * 24]
    assert len({tenant_slug(t) for t in tenants}) == len(tenants)
    assert tenant_slug("Acme").startswith("_") and tenant_slug("acme") == "acme"
    store = CollectionStore(path=tmp_path / "chroma")
    for tenant in tenants:
        store.create(tenant, "shared")
    for tenant in tenants:
        assert [c.name for c in store.list(tenant)] == ["shared"]
        assert len(collections_in_folder(store.tenants.folder(tenant))) == 1


def test_a_shared_store_from_before_moves_into_each_tenants_store(tmp_path, caplog):
    import chromadb

    path = tmp_path / "chroma"
    shared = chromadb.PersistentClient(path=str(path), settings=chroma_settings())
    old_collection(shared, "acme", "handbook")
    old_collection(shared, "globex", "notes")
    old_collection(shared, None, "orphan")
    shared.close()

    with caplog.at_level(logging.WARNING):
        store = CollectionStore(path=path)
        assert [(c.name, c.documents, c.chunks) for c in store.list("acme")] == [("handbook", 1, 3)]
    assert store.embeddings_of("acme", "handbook", ["doc#1"]) == {"doc#1": VECTORS["doc#1"]}
    assert [c.name for c in store.list("globex")] == ["notes"]
    assert collections_in_folder(store.tenants.folder("acme")) == ["acme.handbook"]
    assert not (path / "chroma.sqlite3").exists() and (path / MIGRATED_FOLDER / "chroma.sqlite3").exists()
    assert "moved 2 collections" in caplog.text and "nobody.orphan" in caplog.text

    store.delete("acme", "handbook")
    assert CollectionStore(path=path).list("acme") == [], "a deleted collection came back from the old store"


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """`chroma run` (the server shipped with chromadb) on a free port, in its own folder."""
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    binary = Path(sys.executable).parent / "chroma"
    proc = subprocess.Popen(
        [str(binary), "run", "--path", str(folder), "--port", str(port)],
        stdout=open(folder / "server.log", "w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"chroma run did not start:\n{(folder / 'server.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(15)


def server_client(url: str, tenant: str = "default_tenant", database: str = "default_database"):
    import chromadb

    port = int(url.rsplit(":", 1)[1])
    return chromadb.HttpClient(
        host="127.0.0.1", port=port, settings=chroma_settings(), tenant=tenant, database=database
    )


def test_on_a_chroma_server_each_tenant_is_a_chroma_tenant(chroma_server):
    store = CollectionStore(url=chroma_server)
    store.create("acme", "handbook")
    store.create("Globex Corp", "handbook")
    acme = server_client(chroma_server, store.tenants.server_tenant("acme"), SERVER_DATABASE)
    globex = server_client(chroma_server, store.tenants.server_tenant("Globex Corp"), SERVER_DATABASE)
    assert [c.name for c in acme.list_collections()] == ["acme.handbook"]
    assert len(globex.list_collections()) == 1 and globex.list_collections()[0].name != "acme.handbook"
    assert server_client(chroma_server).list_collections() == []
    assert CollectionStore(url=chroma_server).list("acme")[0].name == "handbook"  # a second process


def test_on_a_chroma_server_the_default_database_is_emptied_into_tenants(chroma_server):
    default = server_client(chroma_server)
    old_collection(default, "initech", "wiki")
    store = CollectionStore(url=chroma_server)
    assert [(c.name, c.chunks) for c in store.list("initech")] == [("wiki", 3)]
    assert default.list_collections() == []
    assert store.embeddings_of("initech", "wiki", ["doc#2"]) == {"doc#2": VECTORS["doc#2"]}
