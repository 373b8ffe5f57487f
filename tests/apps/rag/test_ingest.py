"""Reading and storing documents: types, chunking, replacement, errors people can act on."""

from __future__ import annotations

import pytest

from vireo.apps.base import AppInputError, LocalContext
from vireo.apps.rag import RagIngestApp
from vireo.apps.rag.documents import DocumentInput, chunk_document, parse_document

from .conftest import b64, simple_pdf


def test_pdf_text_is_read_page_by_page():
    pdf = simple_pdf(["The Orbis-7 satellite weighs 1,450 kilograms.", "It orbits at 820 kilometres."])
    parsed = parse_document(DocumentInput(filename="orbis.pdf", content_base64=b64(pdf)))
    assert parsed.kind == "pdf"
    assert "1,450 kilograms" in parsed.sections[0].text
    assert parsed.sections[0].metadata == {"page": 1}


def test_html_loses_markup_and_scripts():
    html = (
        "<html><head><title>Fern</title><script>alert('x')</script></head><body><p>Fronds turn red.</p></body></html>"
    )
    text = parse_document(DocumentInput(filename="fern.html", text=html)).sections[0].text
    assert "Fronds turn red." in text and "alert" not in text and "<p>" not in text


def test_long_text_is_chunked_with_overlap():
    words = " ".join(f"word{i}" for i in range(600))
    parsed = parse_document(DocumentInput(text=words))
    chunks = chunk_document(parsed, chunk_size=400, chunk_overlap=100)
    assert len(chunks) > 5
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert set(first) & set(second), "neighbouring chunks should share words"
    assert [c.metadata["chunk"] for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"filename": "notes.docx", "content_base64": b64("x")}, "not supported"),
        ({"filename": "notes.txt", "content_base64": "%%%not base64"}, "not valid base64"),
        ({"filename": "scan.pdf", "content_base64": b64(b"%PDF-1.4 garbage")}, "PDF"),
        ({"filename": "latin.txt", "content_base64": b64("caf\xe9".encode("latin-1"))}, "UTF-8"),
    ],
)
def test_unreadable_documents_fail_with_a_clear_message(doc, message):
    with pytest.raises(AppInputError, match=message):
        parse_document(DocumentInput(**doc))


async def test_ingest_reports_progress_and_reingest_replaces(engine, store):
    app = RagIngestApp(store)
    ctx = LocalContext(engine, tenant="ingest-test")
    doc = {"filename": "note.md", "text": "# Note\n\nThe blue door is on the left."}
    first = await app.run(ctx, app.Input(collection="notes", documents=[doc]))
    again = await app.run(ctx, app.Input(collection="notes", documents=[doc]))
    assert first.chunks_added == 1 and again.collection_chunks == 1 and again.collection_documents == 1
    assert ctx.progress_log[0][0] == 0.0 and ctx.progress_log[-1][0] == 1.0
