"""Shared fixtures: one SmolLM2 engine (hf backend), one Chroma folder, one ingested collection."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import pytest_asyncio

from vireo.apps.base import LocalContext
from vireo.apps.rag import CollectionStore, RagApp, RagIngestApp

DATA = Path(__file__).resolve().parents[3] / "vireo" / "tools" / "evals" / "data" / "rag_qa.json"


def simple_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF showing `lines` in Helvetica (built by hand: no PDF writer installed)."""
    text = (
        "BT /F1 12 Tf 72 720 Td 14 TL "
        + " ".join("(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '" for line in lines)
        + " ET"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text.encode("latin-1") + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


@pytest.fixture(scope="session")
def corpus() -> dict:
    return json.loads(DATA.read_text())


@pytest.fixture(scope="session")
def engine(hf_engine):
    return hf_engine


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> CollectionStore:
    return CollectionStore(path=tmp_path_factory.mktemp("chroma"))


@pytest_asyncio.fixture(scope="session")
async def docs_collection(engine, store, corpus) -> str:
    """Tenant 'acme' owns collection 'docs' holding three of the eval documents (one sent as a file)."""
    by_name = {d["filename"]: d for d in corpus["documents"]}
    documents = [
        by_name["marlow_lighthouse.md"],
        by_name["kestrel_kettle.txt"],
        {"filename": "quillon_fern.html", "content_base64": b64(by_name["quillon_fern.html"]["text"])},
    ]
    app = RagIngestApp(store)
    await app.run(LocalContext(engine, tenant="acme"), app.Input(collection="docs", documents=documents))
    return "docs"


@pytest.fixture(scope="session")
def rag_app(store) -> RagApp:
    return RagApp(store)
