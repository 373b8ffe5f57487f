"""rag: answer a question from a collection, citing passages, or say "I don't know from these documents."

Small models answer confidently from nothing, so abstention never rests on the model alone: a
retrieval-similarity floor and an LLM support score gate generation, and a word-overlap test
rejects an answer whose new words are not in the passages.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from vireo.apps.base import App, AppContext, RouteDeps, TechniquePreferences
from vireo.apps.rag import grounding
from vireo.apps.rag.documents import MetaValue
from vireo.apps.rag.retrieval import Passage, rerank, retrieve
from vireo.apps.rag.store import CollectionNotFound, CollectionStore, check_name, default_store
from vireo.inference.api import GenerationRequest

if TYPE_CHECKING:
    from fastapi import APIRouter

IDK = grounding.IDK


class RagInput(BaseModel):
    collection: str = Field(..., min_length=1, max_length=64)
    question: str = Field(..., min_length=1, max_length=2000)
    k: int = Field(3, ge=1, le=10, description="Passages given to the model (small models do best with few).")
    mmr: bool = Field(False, description="Maximal marginal relevance: diverse passages.")
    fetch_k: int = Field(20, ge=1, le=100, description="Candidates MMR chooses from.")
    lambda_mult: float = Field(0.5, ge=0, le=1, description="MMR: 1 = relevance only, 0 = diversity only.")
    filters: dict[str, MetaValue | list[MetaValue]] | None = Field(
        None, description="Metadata equality filters, e.g. {'source': 'guide.pdf'} or {'lang': ['en', 'de']}."
    )
    rerank: bool = Field(False, description="Rerank candidates by the LLM's query likelihood.")
    rerank_candidates: int = Field(8, ge=1, le=30)
    min_similarity: float = Field(0.35, ge=0, le=1, description="Abstain if no passage is this similar.")
    support_check: bool = Field(
        False,
        description="Abstain if the LLM scores the passages as not answering "
        "(off by default: SmolLM2-135M's score does not separate "
        "answerable from unanswerable questions; see benchmarks).",
    )
    min_support_margin: float = Field(-2.0, description="Least log P(Yes) - log P(No) to go on answering.")
    min_grounding: float = Field(0.5, ge=0, le=1, description="Least share of new answer words found in passages.")
    max_tokens: int = Field(64, ge=16, le=1024)


class CitedPassage(BaseModel):
    number: int
    doc_id: str
    source: str
    chunk: int
    page: int | None
    text: str
    similarity: float
    rerank_score: float | None
    cited: bool


class RagChecks(BaseModel):
    max_similarity: float | None = None
    support_margin: float | None = None
    grounding: float | None = None
    citation_added: bool = False


class RagOutput(BaseModel):
    answer: str
    abstained: bool
    abstain_reason: str | None = None
    citations: list[CitedPassage] = Field(description="The passages the answer cites, in citation order.")
    passages: list[CitedPassage] = Field(description="Every passage the model was shown.")
    checks: RagChecks


class RagApp(App[RagInput]):
    name = "rag"
    title = "Ask your documents"
    description = "Answer questions from a document collection with numbered citations, or abstain."
    Input = RagInput
    Output = RagOutput
    preferences = TechniquePreferences(speculation="prompt_lookup")  # answers copy from the passages

    def __init__(self, store: CollectionStore | None = None):
        self._store = store

    @property
    def store(self) -> CollectionStore:
        return self._store or default_store()

    def validate_for_engine(self, input: RagInput, engine_context_length: int, count_tokens) -> None:
        check_name(input.collection)

    @classmethod
    def router(cls, deps: RouteDeps) -> APIRouter:
        from vireo.apps.rag.routes import collections_router

        return collections_router(deps)

    async def run(self, ctx: AppContext, input: RagInput) -> RagOutput:
        check_name(input.collection)
        if not await asyncio.to_thread(self.store.exists, ctx.tenant, input.collection):
            raise CollectionNotFound(input.collection)
        ctx.progress(0.0, "retrieving passages")
        passages = await self._passages(ctx, input)
        checks = RagChecks(max_similarity=max((p.similarity for p in passages), default=None))
        reason = await self._gate(ctx, input, passages, checks)
        if reason:
            ctx.emit(IDK)
            return self._abstain(ctx, passages, checks, reason)
        ctx.progress(0.5, "answering")
        request = GenerationRequest(
            messages=grounding.answer_messages(input.question, passages),
            sampling=ctx.sampling(max_tokens=input.max_tokens, temperature=0.0, stop=["\n"]),
        )  # one-line answers
        answer = (await ctx.stream(request)).text.strip()
        return self._finish(ctx, input, answer, passages, checks)

    async def _passages(self, ctx: AppContext, input: RagInput) -> list[Passage]:
        fetch = input.rerank_candidates if input.rerank else input.k
        passages = await asyncio.to_thread(
            retrieve,
            self.store,
            ctx.tenant,
            input.collection,
            input.question,
            max(fetch, input.k),
            input.mmr,
            input.fetch_k,
            input.lambda_mult,
            input.filters,
        )
        if input.rerank and passages:
            ctx.progress(0.2, f"reranking {len(passages)} passages")
            passages = await rerank(ctx.engine, input.question, passages, input.k)
        for number, passage in enumerate(passages, start=1):
            passage.number = number
        return passages

    async def _gate(self, ctx: AppContext, input: RagInput, passages: list[Passage], checks: RagChecks) -> str | None:
        """Why not to answer at all, or None."""
        if not passages:
            return "no passages in the collection match"
        if checks.max_similarity is not None and checks.max_similarity < input.min_similarity:
            return f"best passage similarity {checks.max_similarity:.2f} is below {input.min_similarity:.2f}"
        if input.support_check:
            checks.support_margin = round(await grounding.support_margin(ctx.engine, input.question, passages), 3)
            if checks.support_margin < input.min_support_margin:
                return f"the model judged the passages not to answer (margin {checks.support_margin:.2f})"
        return None

    def _finish(
        self, ctx: AppContext, input: RagInput, answer: str, passages: list[Passage], checks: RagChecks
    ) -> RagOutput:
        if grounding.is_abstention(answer) or not answer:
            return self._abstain(ctx, passages, checks, "the model said the passages do not answer")
        checks.grounding = round(grounding.grounding_overlap(answer, passages, input.question), 3)
        if checks.grounding < input.min_grounding:
            ctx.emit(f"\n\n[withdrawn: most of this answer is not in the passages] {IDK}")
            return self._abstain(
                ctx, passages, checks, f"only {checks.grounding:.0%} of the answer's new words appear in the passages"
            )
        numbers = grounding.cited_numbers(answer, len(passages))
        if not numbers:  # small models often forget to cite: cite the passage that carries the answer
            best = grounding.best_supporting(answer, passages)
            if best is not None:
                ctx.emit(f" [{best.number}]")
                answer, numbers, checks.citation_added = f"{answer} [{best.number}]", [best.number], True
        by_number = {p.number: p for p in passages}
        ctx.progress(1.0, "done")
        return RagOutput(
            answer=answer,
            abstained=False,
            checks=checks,
            citations=[_cited(by_number[n], set(numbers)) for n in numbers],
            passages=[_cited(p, set(numbers)) for p in passages],
        )

    def _abstain(self, ctx: AppContext, passages: list[Passage], checks: RagChecks, reason: str) -> RagOutput:
        ctx.progress(1.0, "done")
        return RagOutput(
            answer=IDK,
            abstained=True,
            abstain_reason=reason,
            citations=[],
            passages=[_cited(p, set()) for p in passages],
            checks=checks,
        )


def _cited(passage: Passage, cited: set[int]) -> CitedPassage:
    return CitedPassage(
        number=passage.number,
        doc_id=passage.doc_id,
        source=passage.source,
        chunk=passage.chunk,
        page=passage.page,
        text=passage.text,
        similarity=passage.similarity,
        rerank_score=passage.rerank_score,
        cited=passage.number in cited,
    )
