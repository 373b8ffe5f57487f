"""Asking a collection: grounded answers with citations, abstention, tenant isolation."""

from __future__ import annotations

import pytest

from vireo.apps.base import AppInputError, LocalContext
from vireo.apps.rag.ask import IDK
from vireo.apps.rag.retrieval import rerank, retrieve


async def test_answer_cites_the_document_that_holds_it(engine, rag_app, docs_collection):
    ctx = LocalContext(engine, tenant="acme")
    out = await rag_app.run(
        ctx, rag_app.Input(collection=docs_collection, max_tokens=48, question="Who designed Marlow Point Lighthouse?")
    )
    assert not out.abstained, out.abstain_reason
    assert "Whitcombe" in out.answer
    assert out.citations and out.citations[0].source == "marlow_lighthouse.md"
    assert f"[{out.citations[0].number}]" in out.answer
    assert "".join(ctx.emitted).strip() == out.answer  # the answer was streamed


async def test_question_the_documents_do_not_answer_abstains(engine, rag_app, docs_collection):
    ctx = LocalContext(engine, tenant="acme")
    out = await rag_app.run(
        ctx, rag_app.Input(collection=docs_collection, max_tokens=48, question="What is the capital city of Australia?")
    )
    assert out.abstained and out.answer == IDK and out.citations == []


async def test_other_tenant_cannot_see_or_ask_the_collection(engine, rag_app, store, docs_collection):
    assert [c.name for c in store.list("acme")] == ["docs"]
    assert store.list("globex") == []
    with pytest.raises(AppInputError, match="no collection named 'docs'"):
        await rag_app.run(
            LocalContext(engine, tenant="globex"),
            rag_app.Input(collection=docs_collection, question="Who designed the lighthouse?"),
        )


def test_same_name_in_two_tenants_are_separate_collections(store):
    store.create("tenant.with.dots", "shared")
    store.create("other", "shared")
    store.delete("other", "shared")
    assert [c.name for c in store.list("tenant.with.dots")] == ["shared"]
    assert store.list("other") == []


def test_metadata_filter_limits_retrieval_to_one_source(store, docs_collection):
    passages = retrieve(
        store, "acme", docs_collection, "How tall is the lighthouse?", k=3, filters={"source": "kestrel_kettle.txt"}
    )
    assert passages and {p.source for p in passages} == {"kestrel_kettle.txt"}


def test_mmr_returns_distinct_passages_with_similarity(store, docs_collection):
    passages = retrieve(store, "acme", docs_collection, "Who designed the lighthouse?", k=3, mmr=True, fetch_k=3)
    assert len({p.chunk_id for p in passages}) == len(passages) == 3
    assert passages[0].source == "marlow_lighthouse.md" and passages[0].similarity > 0.4


async def test_llm_rerank_keeps_the_passage_that_answers_first(engine, store, docs_collection):
    question = "How many steps lead up to the lantern gallery?"
    passages = retrieve(store, "acme", docs_collection, question, k=3)
    reranked = await rerank(engine, question, passages, keep=2)
    assert len(reranked) == 2 and all(p.rerank_score is not None for p in reranked)
    assert reranked[0].source == "marlow_lighthouse.md"
