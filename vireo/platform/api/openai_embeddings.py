"""OpenAI's `POST /v1/embeddings`, answered in the API process.

Design: the packaged all-MiniLM-L6-v2 (384-d, ~90 MB, a few ms per short text on CPU) is the same
`shared_embedder()` that engines' `embed()` use. A job round trip (Redis, a worker, a GPU slot) would
cost more than the embedding itself, so the route embeds in-process, off the event loop
(`asyncio.to_thread`); the embedder serialises its own calls with a lock. Input caps keep one request
from holding that lock for long. Only this model is served here: other names get OpenAI's 404.
"""

from __future__ import annotations

import asyncio
import base64
import struct

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from vireo.inference.embedder import shared_embedder
from vireo.platform.api.deps import PrincipalDep
from vireo.platform.api.error_docs import error_responses

router = APIRouter(prefix="/v1", tags=["openai"])

EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDING_DIMENSIONS = 384
MAX_INPUTS = 256
MAX_CHARS = 8192  # per input


class EmbeddingRequest(BaseModel):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: str = "float"
    dimensions: int | None = None
    user: str | None = None


def embedding_texts(body: EmbeddingRequest) -> list[str]:
    """The texts to embed, or a 400/404/413 naming what is wrong."""
    if body.model.lower() not in (EMBEDDING_MODEL, f"sentence-transformers/{EMBEDDING_MODEL}"):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"model {body.model!r} is not served here for embeddings; this server embeds with {EMBEDDING_MODEL!r}",
        )
    if body.encoding_format not in ("float", "base64"):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "encoding_format must be 'float' or 'base64'")
    if body.dimensions is not None and body.dimensions != EMBEDDING_DIMENSIONS:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"{EMBEDDING_MODEL} embeds in {EMBEDDING_DIMENSIONS} dimensions only"
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or not all(isinstance(t, str) for t in texts):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "input must be a non-empty string or list of strings (token ids are not accepted)",
        )
    if len(texts) > MAX_INPUTS:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {MAX_INPUTS} inputs per request")
    strings = [t for t in texts if isinstance(t, str)]
    for i, text in enumerate(strings):
        if not text:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"input[{i}] is empty")
        if len(text) > MAX_CHARS:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"input[{i}] is longer than {MAX_CHARS} characters")
    return strings


def _embed(texts: list[str]) -> tuple[list[list[float]], int]:
    embedder = shared_embedder()
    return embedder.encode(texts), sum(embedder.count_tokens(texts))


def _encoded(vector: list[float], fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


@router.post(
    "/embeddings", summary="Embed texts (OpenAI-compatible)", responses=error_responses(400, 404, 413, openai=True)
)
async def embeddings(body: EmbeddingRequest, principal: PrincipalDep) -> dict:
    texts = embedding_texts(body)
    vectors, tokens = await asyncio.to_thread(_embed, texts)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encoded(v, body.encoding_format)}
            for i, v in enumerate(vectors)
        ],
        "model": EMBEDDING_MODEL,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
