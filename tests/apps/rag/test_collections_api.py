"""The RAG app's collections routes (App.router) with the real bearer-key dependency and a real Chroma folder."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vireo.apps.rag import store as rag_store
from vireo.apps.rag.ask import RagApp
from vireo.platform.api.deps import APP_ROUTE_DEPS
from vireo.platform.api.state import ApiState
from vireo.platform.settings import Settings

ACME = {"Authorization": "Bearer key-acme"}
GLOBEX = {"Authorization": "Bearer key-globex"}


@pytest.fixture
def client(tmp_path, redis_url, monkeypatch) -> TestClient:
    app = FastAPI()
    settings = Settings(home=tmp_path, chroma_url=None, redis_url=redis_url, api_keys="key-acme:acme,key-globex:globex")
    app.state.vireo = ApiState.open(settings)
    monkeypatch.setattr(rag_store, "_default", rag_store.CollectionStore(path=tmp_path / "chroma"))
    app.include_router(RagApp.router(APP_ROUTE_DEPS))
    with TestClient(app) as client:  # one event loop for every request: the Redis client is bound to it
        yield client


def test_create_list_get_delete(client):
    assert client.post("/v1/collections", json={"name": "handbook"}, headers=ACME).status_code == 201
    assert client.get("/v1/collections", headers=ACME).json() == {
        "collections": [{"name": "handbook", "documents": 0, "chunks": 0}]
    }
    assert client.get("/v1/collections/handbook", headers=ACME).json()["chunks"] == 0
    assert client.delete("/v1/collections/handbook", headers=ACME).status_code == 200
    assert client.get("/v1/collections/handbook", headers=ACME).status_code == 404


def test_tenants_do_not_see_each_other(client):
    client.post("/v1/collections", json={"name": "handbook"}, headers=ACME)
    assert client.get("/v1/collections", headers=GLOBEX).json() == {"collections": []}
    assert client.get("/v1/collections/handbook", headers=GLOBEX).status_code == 404
    assert client.delete("/v1/collections/handbook", headers=GLOBEX).status_code == 404
    assert client.post("/v1/collections", json={"name": "handbook"}, headers=GLOBEX).status_code == 201


def test_errors_are_explained(client):
    assert client.get("/v1/collections").status_code == 401
    client.post("/v1/collections", json={"name": "dup"}, headers=ACME)
    again = client.post("/v1/collections", json={"name": "dup"}, headers=ACME)
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    bad = client.post("/v1/collections", json={"name": "../etc"}, headers=ACME)
    assert bad.status_code == 422 and "not valid" in bad.json()["detail"]
