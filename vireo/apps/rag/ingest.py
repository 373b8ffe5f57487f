"""rag_ingest: read documents, chunk them and store them in a tenant's collection, with progress."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, TechniquePreferences
from vireo.apps.rag.documents import DocumentInput, chunk_document, document_type, parse_document, raw_bytes
from vireo.apps.rag.store import CollectionStore, check_name, default_store


class IngestInput(BaseModel):
    collection: str = Field(..., min_length=1, max_length=64, description="Collection to add to.")
    documents: list[DocumentInput] = Field(..., min_length=1, max_length=200)
    chunk_size: int = Field(800, ge=100, le=4000, description="Characters per chunk.")
    chunk_overlap: int = Field(120, ge=0, le=1000, description="Characters shared by neighbouring chunks.")
    create_collection: bool = Field(True, description="Create the collection if it does not exist.")

    @model_validator(mode="after")
    def _overlap_smaller(self) -> "IngestInput":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class IngestedDocument(BaseModel):
    id: str
    source: str
    type: str
    characters: int
    chunks: int


class IngestOutput(BaseModel):
    collection: str
    documents: list[IngestedDocument]
    chunks_added: int
    collection_documents: int
    collection_chunks: int


class RagIngestApp(App[IngestInput]):
    name = "rag_ingest"
    title = "Add documents to a collection"
    description = "Read .txt, .md, .pdf, .html files or pasted text, chunk and embed them for RAG questions."
    Input = IngestInput
    Output = IngestOutput
    preferences = TechniquePreferences(prefix_cache=False)  # no generation at all

    def __init__(self, store: CollectionStore | None = None):
        self._store = store

    @property
    def store(self) -> CollectionStore:
        return self._store or default_store()

    def validate_for_engine(self, input: IngestInput, engine_context_length: int, count_tokens) -> None:
        check_name(input.collection)
        for doc in input.documents:  # cheap checks at submit time; parsing happens in the job
            document_type(doc)
            raw_bytes(doc)

    async def run(self, ctx: AppContext, input: IngestInput) -> IngestOutput:
        self.validate_for_engine(input, 0, len)
        store, tenant = self.store, ctx.tenant
        if input.create_collection and not await asyncio.to_thread(store.exists, tenant, input.collection):
            await asyncio.to_thread(store.create, tenant, input.collection)
        ctx.progress(0.0, f"reading {len(input.documents)} documents")
        parsed = [parse_document(doc) for doc in input.documents]  # fail before storing anything
        done, added = [], 0
        for number, (doc, original) in enumerate(zip(parsed, input.documents)):
            ctx.check_cancelled()
            chunks = chunk_document(doc, input.chunk_size, input.chunk_overlap, original.metadata)
            ctx.progress(number / len(parsed), f"embedding {doc.source} ({len(chunks)} chunks)")
            added += await asyncio.to_thread(store.replace_document, tenant, input.collection, doc.doc_id, chunks)
            done.append(
                IngestedDocument(
                    id=doc.doc_id, source=doc.source, type=doc.kind, characters=doc.characters, chunks=len(chunks)
                )
            )
        info = await asyncio.to_thread(store.info, tenant, input.collection)
        ctx.progress(1.0, f"added {added} chunks from {len(done)} documents")
        return IngestOutput(
            collection=input.collection,
            documents=done,
            chunks_added=added,
            collection_documents=info.documents,
            collection_chunks=info.chunks,
        )
