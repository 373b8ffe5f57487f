"""Text we did not write (model output, documents, file names, error details) as markdown that loads
nothing and renders no HTML.

Streamlit renders markdown in the browser, so an image in model output (`![x](http://host/p.png)`,
reference-style too, and in labels) is fetched the moment it is shown: a beacon that carries whatever
the model was talked into putting in its URL. A link hides its target behind its label. Escaping
characters in place cannot be made safe, because whether a `[` is inside a code block depends on the
whole document. So the text is parsed (CommonMark + tables + strikethrough) and written back
canonically: headings, paragraphs, lists, quotes, tables and code keep their shape; every piece of
text is backslash-escaped, so nothing can start in it (no link, image, HTML, math, directive);
links, images and HTML come back as their literal source text; code keeps its content inside a
fence longer than any run of backticks in it. URLs and e-mail addresses go in code spans: Streamlit
(GFM) turns any bare URL in text into a link, escaped or not, and no link from model output is
wanted. A last parse of the result checks that no image, link or HTML survived; if one did, the
whole text is shown as one code block.
"""

from __future__ import annotations

import re
import string

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

_PARSER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_PUNCTUATION = frozenset(string.punctuation)  # CommonMark lets any ASCII punctuation be escaped
_LOADS_OR_LINKS = {"image", "link_open", "html_inline", "html_block"}
_BACKTICKS = re.compile(r"`+")
# a superset of what GFM links on its own: http(s):// and www. URLs, e-mail addresses (punctuation that
# ends a sentence stays outside)
_URL_OR_EMAIL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]|[-.\w+]+@[-\w]+(?:\.[-\w]+)+", re.IGNORECASE
)


def escape_text(text: str) -> str:
    """Text that markdown shows exactly as written: every ASCII punctuation character escaped."""
    return "".join("\\" + char if char in _PUNCTUATION else char for char in text)


def safe_markdown(text: str) -> str:
    """`text` as markdown with its formatting, but no image, link or HTML: those appear as text."""
    rendered = _blocks(SyntaxTreeNode(_PARSER.parse(text)).children, tight=False)
    if _has_loads_or_links(rendered):
        return _code_block(text, "")
    return rendered


def _has_loads_or_links(markdown: str) -> bool:
    pending = list(_PARSER.parse(markdown))
    while pending:
        token = pending.pop()
        if token.type in _LOADS_OR_LINKS:
            return True
        pending.extend(token.children or [])
    return False


# --- blocks --------------------------------------------------------------------------------------
def _blocks(nodes, tight: bool) -> str:
    return ("\n" if tight else "\n\n").join(_block(node) for node in nodes)


def _block(node) -> str:
    kind = node.type
    if kind == "paragraph":
        return _inline(node.children[0])
    if kind == "heading":
        return "#" * int(node.tag[1]) + " " + _inline(node.children[0])
    if kind in ("fence", "code_block"):
        return _code_block(node.content, node.info if kind == "fence" else "")
    if kind == "html_block":
        return _code_block(node.content, "html")
    if kind == "hr":
        return "***"  # never read as a setext underline, unlike ---
    if kind == "blockquote":
        return "\n".join("> " + line if line else ">" for line in _blocks(node.children, False).split("\n"))
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "table":
        return _table(node)
    return escape_text(node.content)  # a block type this parser does not make today: its text


def _code_block(code: str, info: str) -> str:
    fence = "`" * max(3, _longest_backticks(code) + 1)  # no line of the code can close it
    language = re.sub(r"[^\w+#.-]", "", info.split()[0]) if info.strip() else ""
    if code and not code.endswith("\n"):
        code += "\n"
    return f"{fence}{language}\n{code}{fence}"


def _list(node) -> str:
    tight = any(child.hidden for item in node.children for child in item.children if child.type == "paragraph")
    start = int(node.attrs.get("start", 1)) if node.type == "ordered_list" else None
    items = []
    for number, item in enumerate(node.children):
        marker = f"{start + number}{item.markup}" if start is not None else item.markup
        lines = _blocks(item.children, tight).split("\n") if item.children else [""]
        indent = " " * (len(marker) + 1)
        first = f"{marker} {lines[0]}" if lines[0] else marker
        items.append("\n".join([first] + [indent + line if line else "" for line in lines[1:]]))
    return ("\n" if tight else "\n\n").join(items)


def _table(node) -> str:
    rows = [row for section in node.children for row in section.children]
    width = len(rows[0].children)
    aligns = [cell.attrs.get("style", "") for cell in rows[0].children]
    rule = [
        {"text-align:left": ":--", "text-align:right": "--:", "text-align:center": ":-:"}.get(a, "---") for a in aligns
    ]
    lines = []
    for row in rows:
        cells = [_inline(cell.children[0], in_table=True) if cell.children else "" for cell in row.children]
        lines.append("| " + " | ".join((cells + [""] * width)[:width]) + " |")
    lines.insert(1, "| " + " | ".join(rule) + " |")
    return "\n".join(lines)


# --- inline --------------------------------------------------------------------------------------
def _inline(node, in_table: bool = False) -> str:
    return "".join(_span(child, in_table) for child in node.children)


def _span(node, in_table: bool) -> str:
    kind = node.type
    if kind in ("text", "text_special", "html_inline"):
        return _text(node.content, in_table)
    if kind == "softbreak":
        return "\n"
    if kind == "hardbreak":
        return "\\\n"
    if kind == "code_inline":
        return _code_span(node.content, in_table)
    if kind in ("em", "strong", "s"):
        return node.markup + _inline(node, in_table) + node.markup
    if kind == "image":
        return _text(f"![{node.content}](", in_table) + _url(node.attrs.get("src", ""), in_table) + "\\)"
    if kind == "link":
        if node.markup == "autolink":
            return "\\<" + _url(node.attrs.get("href", ""), in_table) + "\\>"
        return "\\[" + _inline(node, in_table) + "\\]\\(" + _url(node.attrs.get("href", ""), in_table) + "\\)"
    return _text(node.content, in_table)


def _text(text: str, in_table: bool) -> str:
    """Escaped text, with every URL or e-mail address in it as code (never a link)."""
    out, last = [], 0
    for match in _URL_OR_EMAIL.finditer(text):
        out += [escape_text(text[last : match.start()]), _url(match.group(), in_table)]
        last = match.end()
    return "".join(out) + escape_text(text[last:])


def _url(url: str, in_table: bool) -> str:
    return _code_span(url, in_table) if url else ""


def _code_span(code: str, in_table: bool) -> str:
    if in_table:
        code = code.replace("|", "\\|")  # GFM splits cells at a pipe even inside code, unless escaped
    fence = "`" * (_longest_backticks(code) + 1)
    pad = " " if code[:1] in ("`", " ") or code[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{code}{pad}{fence}"


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in _BACKTICKS.findall(text)), default=0)
