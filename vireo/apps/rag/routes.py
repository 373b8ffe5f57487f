"""The RAG app's own REST routes: document collections per tenant (create, list, inspect, delete).

Documents are added through the job API (`POST /v1/jobs` with app `rag_ingest`), so ingestion
gets progress, cancellation and a result like any other job. `RagApp.router` hands these routes to
the API, which lends them its authentication and rate limit (`RouteDeps`, apps/base.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from vireo.apps.base import RouteDeps
from vireo.apps.rag.store import (
    COLLECTION_NAME,
    CollectionExists,
    CollectionInfo,
    CollectionNotFound,
    CollectionStore,
    InvalidCollectionName,
    default_store,
)


class CreateCollection(BaseModel):
    # the pattern is documented, not enforced here: the store's own check answers with a clearer message
    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        description="Letters, digits, '-' or '_'.",
        json_schema_extra={"pattern": COLLECTION_NAME.pattern},
    )


class CollectionOut(BaseModel):
    name: str
    documents: int
    chunks: int


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class Deleted(BaseModel):
    name: str
    deleted: bool = True


def _out(info: CollectionInfo) -> CollectionOut:
    return CollectionOut(name=info.name, documents=info.documents, chunks=info.chunks)


def _not_found(exc: CollectionNotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


def collections_router(deps: RouteDeps) -> APIRouter:
    router = APIRouter(prefix="/v1/collections", tags=["collections"])

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        response_model=CollectionOut,
        responses=deps.error_responses(409),
        dependencies=[Depends(deps.rate_limited)],
    )
    def create_collection(
        body: CreateCollection, tenant: str = Depends(deps.tenant), store: CollectionStore = Depends(default_store)
    ) -> CollectionOut:
        try:
            return _out(store.create(tenant, body.name))
        except InvalidCollectionName as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        except CollectionExists as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    @router.get("", response_model=CollectionList)
    def list_collections(
        tenant: str = Depends(deps.tenant), store: CollectionStore = Depends(default_store)
    ) -> CollectionList:
        return CollectionList(collections=[_out(info) for info in store.list(tenant)])

    @router.get("/{name}", response_model=CollectionOut, responses=deps.error_responses(404))
    def get_collection(
        name: str, tenant: str = Depends(deps.tenant), store: CollectionStore = Depends(default_store)
    ) -> CollectionOut:
        try:
            return _out(store.info(tenant, name))
        except (CollectionNotFound, InvalidCollectionName):
            raise _not_found(CollectionNotFound(name)) from None

    @router.delete(
        "/{name}",
        response_model=Deleted,
        responses=deps.error_responses(404),
        dependencies=[Depends(deps.rate_limited)],
    )
    def delete_collection(
        name: str, tenant: str = Depends(deps.tenant), store: CollectionStore = Depends(default_store)
    ) -> Deleted:
        try:
            store.delete(tenant, name)
        except (CollectionNotFound, InvalidCollectionName):
            raise _not_found(CollectionNotFound(name)) from None
        return Deleted(name=name)

    return router
