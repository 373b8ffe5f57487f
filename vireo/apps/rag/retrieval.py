"""Find passages for a question: a LangChain retriever over Chroma (similarity or MMR, metadata
filters), cosine similarity per passage, and an optional LLM rerank by query likelihood."""

from __future__ import annotations

from dataclasses import dataclass, field

from vireo.apps.rag.store import CollectionStore, rag_embeddings
from vireo.inference.api import Engine

RERANK_PASSAGE_CHARS = 1500  # keep the rerank prompt short; the start of a chunk carries its topic


@dataclass
class Passage:
    """A retrieved chunk; `number` is its citation number in the prompt (1-based)."""

    chunk_id: str
    text: str
    doc_id: str
    source: str
    chunk: int
    similarity: float
    page: int | None = None
    rerank_score: float | None = None
    number: int = 0
    metadata: dict = field(default_factory=dict)


def chroma_filter(filters: dict | None) -> dict | None:
    """Chroma `where` from flat equality filters; a list value means any of these values."""
    if not filters:
        return None
    clauses = [{key: {"$in": value} if isinstance(value, list) else value} for key, value in filters.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def retrieve(
    store: CollectionStore,
    tenant: str,
    collection: str,
    question: str,
    k: int,
    mmr: bool = False,
    fetch_k: int = 20,
    lambda_mult: float = 0.5,
    filters: dict | None = None,
) -> list[Passage]:
    """Top-k passages in the retriever's order, each with its cosine similarity to the question."""
    search_kwargs: dict = {"k": k, "filter": chroma_filter(filters)}
    if mmr:
        search_kwargs.update(fetch_k=max(fetch_k, k), lambda_mult=lambda_mult)
    retriever = store.vectorstore(tenant, collection).as_retriever(
        search_type="mmr" if mmr else "similarity", search_kwargs=search_kwargs
    )
    documents = retriever.invoke(question)
    if not documents:
        return []
    query = rag_embeddings().embed_query(question)
    vectors = store.embeddings_of(tenant, collection, [d.id for d in documents])
    return [_passage(d, _dot(query, vectors.get(d.id))) for d in documents]


def _passage(document, similarity: float) -> Passage:
    meta = dict(document.metadata)
    return Passage(
        chunk_id=document.id,
        text=document.page_content,
        doc_id=str(meta.get("doc_id", "")),
        source=str(meta.get("source", "")),
        chunk=int(meta.get("chunk", 0)),
        page=meta.get("page"),
        similarity=round(similarity, 4),
        metadata=meta,
    )


def _dot(a: list[float], b: list[float] | None) -> float:
    return float(sum(x * y for x, y in zip(a, b))) if b is not None else 0.0


async def rerank(engine: Engine, question: str, passages: list[Passage], keep: int) -> list[Passage]:
    """Order passages by how likely the LLM finds the question after reading each one
    (query likelihood, as in UPR, Sachan et al. 2022): mean log-probability per question token."""
    continuation = " " + question.strip()
    tokens = max(1, engine.count_tokens(continuation))
    for passage in passages:
        prompt = (
            f"Passage: {passage.text[:RERANK_PASSAGE_CHARS]}\nPlease write a question based on this passage.\nQuestion:"
        )
        [logprob] = await engine.score(prompt, [continuation])
        passage.rerank_score = round(logprob / tokens, 4)
    return sorted(passages, key=lambda p: -(p.rerank_score or 0.0))[:keep]
