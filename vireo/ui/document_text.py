"""The text of an uploaded document (.txt, .md, .pdf, .docx), for apps that take text (no Streamlit here).

The UI reads the file itself and sends its text: the summarize app takes text, and a file's text is far
smaller than the file. PDFs are read with pypdf (a Vireo dependency), .docx files as the zip of XML they
are (Word's paragraphs and line breaks), so no library is needed for them.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePath
from xml.etree import ElementTree

DOCUMENT_TYPES = ("txt", "md", "markdown", "pdf", "docx")
WORD = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


class UnreadableDocument(ValueError):
    """The file is not a document of its type, or holds no text; the message says which."""


def document_text(filename: str, data: bytes) -> str:
    """The text of the file, by its extension."""
    kind = PurePath(filename).suffix.lower().lstrip(".")
    if kind in ("txt", "md", "markdown"):
        text = data.decode("utf-8-sig", errors="replace")
    elif kind == "pdf":
        text = _pdf_text(filename, data)
    elif kind == "docx":
        text = _docx_text(filename, data)
    else:
        raise UnreadableDocument(f"{filename}: a .{kind} file is not a document this page reads ({_types()})")
    if not text.strip():
        raise UnreadableDocument(f"{filename} holds no text (a scanned PDF has only pictures of text)")
    return text


def _types() -> str:
    return ", ".join(f".{t}" for t in DOCUMENT_TYPES)


def _pdf_text(filename: str, data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        pages = PdfReader(io.BytesIO(data)).pages
        return "\n\n".join((page.extract_text() or "").strip() for page in pages).strip()
    except (PdfReadError, ValueError, KeyError) as exc:
        raise UnreadableDocument(f"{filename} is not a readable PDF ({exc})") from None


def _docx_text(filename: str, data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            root = ElementTree.fromstring(archive.read("word/document.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise UnreadableDocument(f"{filename} is not a readable Word document ({exc})") from None
    paragraphs = []
    for paragraph in root.iter(f"{WORD}p"):
        pieces = []
        for node in paragraph.iter():
            if node.tag == f"{WORD}t":
                pieces.append(node.text or "")
            elif node.tag in (f"{WORD}tab",):
                pieces.append("\t")
            elif node.tag in (f"{WORD}br", f"{WORD}cr"):
                pieces.append("\n")
        paragraphs.append("".join(pieces))
    return "\n".join(paragraphs).strip()


def word_count(text: str) -> int:
    return len(text.split())
