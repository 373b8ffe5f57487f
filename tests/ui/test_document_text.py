"""Text out of uploaded documents: plain text, Markdown, a Word file and a PDF, each made here."""

from __future__ import annotations

import io
import zipfile

import pytest

from vireo.ui.document_text import UnreadableDocument, document_text, word_count

WORD = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx(*paragraphs: list[str]) -> bytes:
    """A minimal Word file: each paragraph a list of runs."""
    body = "".join("<w:p>" + "".join(f"<w:r><w:t>{run}</w:t></w:r>" for run in runs) + "</w:p>" for runs in paragraphs)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", f'<w:document xmlns:w="{WORD}"><w:body>{body}</w:body></w:document>')
    return out.getvalue()


def pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica, with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, table)
    return bytes(out)


def test_plain_text_and_markdown_are_read_as_utf8():
    assert document_text("notes.txt", "Café au lait.".encode()) == "Café au lait."
    assert document_text("README.MD", b"\xef\xbb\xbf# Title\n\nBody") == "# Title\n\nBody"  # the BOM dropped


def test_a_word_file_gives_its_paragraphs_with_runs_joined():
    data = docx(["The library ", "opens at nine."], ["It closes at six."])
    assert document_text("report.docx", data) == "The library opens at nine.\nIt closes at six."


def test_a_pdf_gives_the_text_of_its_pages():
    assert document_text("minutes.pdf", pdf("The council met on Tuesday.")) == "The council met on Tuesday."
    assert word_count("The council met on Tuesday.") == 5


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("broken.docx", b"not a zip", "not a readable Word document"),
        ("broken.pdf", b"%PDF-1.4 nothing", "not a readable PDF"),
        ("empty.txt", b"  \n", "holds no text"),
        ("photo.png", b"\x89PNG", "not a document this page reads"),
    ],
)
def test_what_cannot_be_read_is_said_in_words(name, data, says):
    with pytest.raises(UnreadableDocument, match=says):
        document_text(name, data)
