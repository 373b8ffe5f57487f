"""Per-tenant document collections in ChromaDB, embedded with the packaged MiniLM.

Each tenant's collections live in a Chroma store of its own (`tenant_stores.py`: a folder per tenant,
or a Chroma tenant per tenant on a server). Inside it, names are still `<tenant key>.<name>` with the
tenant in the metadata, checked on every access: user names may not contain dots, so even a store
handed the wrong tenant could not address another's collection. Vectors always come from our
embedder (Chroma's default one downloads a model and fails offline), so collections are created
without a Chroma embedding function.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vireo.apps.base import AppInputError
from vireo.apps.rag.shared_store_migration import migrate_shared_store
from vireo.apps.rag.tenant_stores import TenantStores
from vireo.inference.embedder import minilm_path
from vireo.inference.registry import default_home

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$")
_SAFE_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
TENANT_KEY = "vireo_tenant"
NAME_KEY = "vireo_name"


class InvalidCollectionName(AppInputError):
    def __init__(self, name: str):
        super().__init__(
            f"collection name {name!r} is not valid: use 1-64 letters, digits, '-' or '_', "
            "starting and ending with a letter or digit"
        )


class CollectionNotFound(AppInputError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no collection named {name!r}; create it first (POST /v1/collections)")


class CollectionExists(AppInputError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"a collection named {name!r} already exists")


@dataclass
class CollectionInfo:
    name: str
    documents: int
    chunks: int


@dataclass
class Chunk:
    """One piece of a document, ready to embed; `metadata` holds flat str/int/float/bool values."""

    text: str
    metadata: dict


@lru_cache(maxsize=1)
def rag_embeddings():
    """LangChain embeddings over the packaged all-MiniLM-L6-v2, loaded once per process."""
    from langchain_huggingface import HuggingFaceEmbeddings

    return HuggingFaceEmbeddings(
        model_name=minilm_path(),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"normalize_embeddings": True, "batch_size": 128},
    )


def tenant_key(tenant: str) -> str:
    """The tenant as it appears in Chroma names: itself if simple, else a stable hash."""
    if _SAFE_TENANT.match(tenant):
        return tenant
    return "h" + hashlib.sha256(tenant.encode()).hexdigest()[:24]


def check_name(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise InvalidCollectionName(name)
    return name


def legacy_tenant(collection) -> str | None:
    """The tenant of a collection from the shared store, if it is a Vireo collection named for it."""
    tenant = (collection.metadata or {}).get(TENANT_KEY)
    if isinstance(tenant, str) and collection.name.startswith(tenant_key(tenant) + "."):
        return tenant
    return None


class CollectionStore:
    """Create, list, delete, fill and search collections, each tenant's in its own local folder or
    Chroma tenant (`path`: the folder holding the per-tenant folders; `url`: a Chroma server)."""

    def __init__(self, path: str | Path | None = None, url: str | None = None):
        self.path = Path(path) if path else default_home() / "chroma"
        self.url = url
        self.tenants = TenantStores(self.path, url)
        self._migrated = False
        self._lock = threading.Lock()

    def client(self, tenant: str):
        """The tenant's own Chroma client; the first call moves any shared store's collections out."""
        with self._lock:
            if not self._migrated:
                migrate_shared_store(self.tenants, legacy_tenant)
                self._migrated = True
        return self.tenants.client(tenant)

    # --- collections ---------------------------------------------------------------------------
    def chroma_name(self, tenant: str, name: str) -> str:
        return f"{tenant_key(tenant)}.{check_name(name)}"

    def create(self, tenant: str, name: str) -> CollectionInfo:
        chroma_name = self.chroma_name(tenant, name)
        if self._find(tenant, name) is not None:
            raise CollectionExists(name)
        metadata = {"hnsw:space": "cosine", TENANT_KEY: tenant, NAME_KEY: name}
        self.client(tenant).create_collection(chroma_name, embedding_function=None, metadata=metadata)
        return CollectionInfo(name, 0, 0)

    def list(self, tenant: str) -> list[CollectionInfo]:
        prefix = tenant_key(tenant) + "."
        infos = []
        for collection in self.client(tenant).list_collections():
            meta = collection.metadata or {}
            if collection.name.startswith(prefix) and meta.get(TENANT_KEY) == tenant:
                infos.append(self._info(collection))
        return sorted(infos, key=lambda i: i.name)

    def delete(self, tenant: str, name: str) -> None:
        self._get(tenant, name)
        self.client(tenant).delete_collection(self.chroma_name(tenant, name))

    def info(self, tenant: str, name: str) -> CollectionInfo:
        return self._info(self._get(tenant, name))

    def exists(self, tenant: str, name: str) -> bool:
        return self._find(tenant, name) is not None

    def _find(self, tenant: str, name: str):
        try:
            collection = self.client(tenant).get_collection(self.chroma_name(tenant, name), embedding_function=None)
        except Exception as exc:  # chroma raises NotFoundError (1.x) or ValueError (0.x)
            if "not exist" in str(exc).lower() or "not found" in str(exc).lower():
                return None
            raise
        return collection if (collection.metadata or {}).get(TENANT_KEY) == tenant else None

    def _get(self, tenant: str, name: str):
        collection = self._find(tenant, name)
        if collection is None:
            raise CollectionNotFound(name)
        return collection

    def _info(self, collection) -> CollectionInfo:
        metas = collection.get(include=["metadatas"])["metadatas"] or []
        documents = {m.get("doc_id") for m in metas if m}
        return CollectionInfo((collection.metadata or {}).get(NAME_KEY, collection.name), len(documents), len(metas))

    # --- contents ------------------------------------------------------------------------------
    def vectorstore(self, tenant: str, name: str):
        """A LangChain `Chroma` over the collection, always with our embeddings."""
        from langchain_chroma import Chroma

        self._get(tenant, name)
        return Chroma(
            client=self.client(tenant),
            collection_name=self.chroma_name(tenant, name),
            embedding_function=rag_embeddings(),
        )

    # `builtins.list`: in this class `list` is the method above
    def replace_document(self, tenant: str, name: str, doc_id: str, chunks: builtins.list[Chunk]) -> int:
        """Store a document's chunks, dropping any earlier version of the same document id."""
        collection = self._get(tenant, name)
        collection.delete(where={"doc_id": doc_id})
        if not chunks:
            return 0
        texts = [c.text for c in chunks]
        vectors = rag_embeddings().embed_documents(texts)
        ids = [f"{doc_id}#{c.metadata['chunk']}" for c in chunks]
        collection.add(ids=ids, documents=texts, embeddings=vectors, metadatas=[c.metadata for c in chunks])
        return len(chunks)

    def embeddings_of(self, tenant: str, name: str, ids: builtins.list[str]) -> dict[str, builtins.list[float]]:
        """Stored vectors of the given chunk ids."""
        got = self._get(tenant, name).get(ids=ids, include=["embeddings"])
        return {i: list(v) for i, v in zip(got["ids"], got["embeddings"])}


_default: CollectionStore | None = None


def configure_store(path: str | Path | None = None, url: str | None = None) -> CollectionStore:
    """Set the process-wide store (the platform calls this with its settings at start)."""
    global _default
    _default = CollectionStore(path=path, url=url)
    return _default


def default_store() -> CollectionStore:
    """The process-wide store: as configured, else a local folder under the Vireo home."""
    global _default
    if _default is None:
        _default = CollectionStore()
    return _default
