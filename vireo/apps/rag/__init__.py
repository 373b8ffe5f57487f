"""Retrieval-augmented QA over per-tenant document collections (ChromaDB + MiniLM + LangChain)."""

from vireo.apps.rag.ask import RagApp, RagInput, RagOutput
from vireo.apps.rag.ingest import IngestInput, IngestOutput, RagIngestApp
from vireo.apps.rag.store import CollectionStore, configure_store, default_store

__all__ = [
    "RagApp",
    "RagInput",
    "RagOutput",
    "RagIngestApp",
    "IngestInput",
    "IngestOutput",
    "CollectionStore",
    "configure_store",
    "default_store",
]
