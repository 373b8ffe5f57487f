"""Documents in (pasted text, .txt, .md, .pdf, .html as text or base64), chunks with overlap out."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import PurePath

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import AppInputError
from vireo.apps.rag.store import Chunk

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
TEXT_TYPES = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
RESERVED_KEYS = {"doc_id", "source", "chunk", "type", "page", "start_index"}
MetaValue = str | int | float | bool


class DocumentInput(BaseModel):
    """One document: `text`, or `content_base64` with a `filename` whose extension gives the type."""

    filename: str | None = Field(None, max_length=255, description="e.g. 'guide.pdf'; decides the type.")
    text: str | None = Field(None, max_length=MAX_DOCUMENT_BYTES, description="Pasted text (or HTML/Markdown).")
    content_base64: str | None = Field(
        None, max_length=MAX_DOCUMENT_BYTES * 4 // 3 + 8, description="The file's bytes, base64."
    )
    id: str | None = Field(None, max_length=200, description="Stable id; re-ingesting it replaces the old one.")
    metadata: dict[str, MetaValue] = Field(default_factory=dict, description="Filterable fields, e.g. {'lang': 'en'}.")

    @model_validator(mode="after")
    def _one_source(self) -> "DocumentInput":
        if (self.text is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of text or content_base64")
        if self.content_base64 is not None and not self.filename:
            raise ValueError("content_base64 needs a filename (its extension tells the file type)")
        clash = RESERVED_KEYS & set(self.metadata)
        if clash:
            raise ValueError(f"metadata keys {sorted(clash)} are reserved")
        return self


@dataclass
class Section:
    """Text of a document part (a PDF page, or the whole document) and its metadata."""

    text: str
    metadata: dict = field(default_factory=dict)


@dataclass
class ParsedDocument:
    doc_id: str
    source: str
    kind: str
    sections: list[Section]

    @property
    def characters(self) -> int:
        return sum(len(s.text) for s in self.sections)


def document_type(doc: DocumentInput) -> str:
    if not doc.filename:
        return "text"
    suffix = PurePath(doc.filename).suffix.lower()
    if suffix not in TEXT_TYPES:
        raise AppInputError(
            f"{doc.filename}: file type {suffix or '(none)'} is not supported; use "
            f"{', '.join(sorted(TEXT_TYPES))} or paste the text"
        )
    return TEXT_TYPES[suffix]


def raw_bytes(doc: DocumentInput) -> bytes:
    if doc.text is not None:
        return doc.text.encode("utf-8")
    try:
        data = base64.b64decode(doc.content_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise AppInputError(f"{doc.filename}: content_base64 is not valid base64") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise AppInputError(f"{doc.filename}: {len(data)} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    return data


def parse_document(doc: DocumentInput) -> ParsedDocument:
    """Extract text by type; AppInputError for unreadable or empty documents."""
    kind = document_type(doc)
    data = raw_bytes(doc)
    name = doc.filename or "pasted text"
    if kind == "pdf":
        sections = _pdf_sections(data, name)
    elif kind == "html":
        sections = [Section(_html_text(_decode_text(data, name)))]
    else:
        sections = [Section(_decode_text(data, name))]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise AppInputError(f"{name}: no text found in this document")
    doc_id = doc.id or doc.filename or "pasted-" + hashlib.sha256(data).hexdigest()[:12]
    return ParsedDocument(doc_id, doc.filename or doc_id, kind, sections)


def _decode_text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AppInputError(f"{name}: not UTF-8 text; save the file as UTF-8") from None


def _html_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.get_text("\n", strip=True)
    return (title + "\n\n" + body if title and not body.startswith(title) else body).strip()


def _pdf_sections(data: bytes, name: str) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise AppInputError(f"{name}: the PDF is encrypted; send an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise AppInputError(f"{name}: not a readable PDF ({exc})") from None
    if not any(p.strip() for p in pages):
        raise AppInputError(f"{name}: the PDF has no extractable text (a scan? run OCR first)")
    return [Section(_tidy(text), {"page": number}) for number, text in enumerate(pages, start=1)]


def _tidy(text: str) -> str:
    return re.sub(r"[ \t]+\n", "\n", text).strip()


def chunk_document(doc: ParsedDocument, chunk_size: int, chunk_overlap: int, extra: dict | None = None) -> list[Chunk]:
    """Split each section with LangChain's recursive splitter; chunk numbers run across sections."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True)
    chunks: list[Chunk] = []
    for section in doc.sections:
        for piece in splitter.create_documents([section.text], metadatas=[section.metadata]):
            meta = {
                **(extra or {}),
                **piece.metadata,
                "doc_id": doc.doc_id,
                "source": doc.source,
                "type": doc.kind,
                "chunk": len(chunks),
            }
            chunks.append(Chunk(piece.page_content, meta))
    return chunks
