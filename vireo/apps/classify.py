"""Classify: put texts into user-given (or preset) labels by scoring each label, never generating.

One text or a batch (a list, CSV or JSONL). Each text costs one forward pass that scores every
label as the model's answer; probabilities are calibrated (see `label_scorer`). Multi-label mode
keeps every label above a threshold.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, AppInputError
from vireo.apps.classify_presets import PRESETS
from vireo.apps.label_scorer import CALIBRATION_NOTE, RAW_NOTE, LabelScorer
from vireo.apps.tabular import read_rows, to_csv
from vireo.inference.api import GenerationRequest

MAX_TEXTS = 1000
LABEL_ROOM = 64  # tokens kept free for the label answer and the chat markup


class LabelSpec(BaseModel):
    name: str = Field(..., min_length=1, max_length=80)
    description: str | None = Field(None, max_length=300)


class Example(BaseModel):
    text: str = Field(..., min_length=1, max_length=2000)
    label: str
    pair: str | None = None


class ClassifyInput(BaseModel):
    text: str | None = Field(None, max_length=50_000, description="One text to classify.")
    pair: str | None = Field(None, max_length=10_000, description="Second text for pair tasks (NLI hypothesis).")
    texts: list[str] | None = Field(None, max_length=MAX_TEXTS, description="Many texts (batch mode).")
    data: str | None = Field(None, max_length=5_000_000, description="CSV or JSONL content (batch mode).")
    data_format: Literal["csv", "jsonl"] = "csv"
    text_field: str = Field("text", description="Column / field holding the text in `data`.")
    pair_field: str = Field("hypothesis", description="Column / field of the second text for pair tasks.")
    preset: Literal["sentiment", "spam", "news_topic", "feedback", "nli"] | None = Field(
        None, description="A ready-made label set; or give `labels`."
    )
    labels: list[str | LabelSpec] | None = Field(
        None, min_length=2, max_length=50, description="Label names, optionally with descriptions."
    )
    instructions: str | None = Field(None, max_length=1000, description="What the classification is about.")
    examples: list[Example] = Field(default_factory=list, max_length=20, description="Few-shot examples.")
    multi_label: bool = False
    threshold: float | None = Field(
        None, gt=0, lt=1, description="Multi-label cut-off (default: above uniform, 1/labels)."
    )
    calibrate: bool = Field(True, description="Divide by the content-free prior (recommended).")
    examples_per_label: int = Field(3, ge=0, le=20, description="Batch mode: texts shown per label.")

    @model_validator(mode="after")
    def _consistent(self) -> "ClassifyInput":
        if sum(x is not None for x in (self.text, self.texts, self.data)) != 1:
            raise ValueError("give exactly one of text, texts or data")
        if self.text is not None and not self.text.strip():
            raise ValueError("text is empty: give the text to classify")
        if (self.preset is None) == (self.labels is None):
            raise ValueError(f"give either labels or a preset ({', '.join(PRESETS)})")
        names = [label.lower() for label in self.label_names()]
        if len(set(names)) != len(names):
            raise ValueError("labels must be distinct")
        unknown = {e.label for e in self.examples} - set(self.label_names())
        if unknown:
            raise ValueError(f"examples use labels not in the label set: {', '.join(sorted(unknown))}")
        if self.is_pair() and self.text is not None and not self.pair:
            raise ValueError("this preset compares two texts: give `pair` (the hypothesis) as well")
        return self

    def label_specs(self) -> list[LabelSpec]:
        if self.preset is not None:
            return [LabelSpec(name=k, description=v) for k, v in PRESETS[self.preset].labels.items()]
        return [LabelSpec(name=x) if isinstance(x, str) else x for x in self.labels or []]

    def label_names(self) -> list[str]:
        return [spec.name for spec in self.label_specs()]

    def is_pair(self) -> bool:
        return self.preset is not None and PRESETS[self.preset].pair


class LabelProbability(BaseModel):
    label: str
    probability: float
    logprob: float = Field(description="Raw log-likelihood of the label as the answer.")


class ClassifiedText(BaseModel):
    index: int
    text: str = Field(description="The text (clipped to 200 characters).")
    label: str = Field(description="The most likely label.")
    labels: list[str] = Field(description="Labels assigned (one, or several in multi-label mode).")
    probability: float
    scores: list[LabelProbability]
    truncated: bool = Field(False, description="The text was cut to fit the model's context.")


class ClassifyOutput(BaseModel):
    label: str | None = Field(None, description="Single-text mode: the chosen label.")
    labels: list[str] = Field(default_factory=list, description="Single-text mode: the labels assigned.")
    scores: list[LabelProbability] = Field(default_factory=list, description="Single-text mode: every label.")
    results: list[ClassifiedText]
    counts: dict[str, int] = Field(description="How many texts got each label.")
    examples: dict[str, list[str]] = Field(default_factory=dict, description="A few texts per label.")
    csv: str | None = Field(None, description="Batch mode: the results as CSV.")
    method: str


class ClassifyApp(App[ClassifyInput]):
    name = "classify"
    title = "Classify"
    description = (
        "Sort texts into your labels (or a preset: sentiment, spam, news topic, feedback, NLI) with "
        "calibrated probabilities; one text or a CSV/JSONL batch."
    )
    Input = ClassifyInput
    Output = ClassifyOutput

    def validate_for_engine(self, input: ClassifyInput, engine_context_length: int, count_tokens) -> None:
        if input.texts is not None and not input.texts:
            raise AppInputError("texts is empty: give at least one text")
        room = engine_context_length - count_tokens(self._system(input)) - LABEL_ROOM
        if room < 32:
            raise AppInputError("the label descriptions and examples fill the model's context; shorten them")

    async def run(self, ctx: AppContext, input: ClassifyInput) -> ClassifyOutput:
        self.validate_for_engine(input, ctx.engine.context_length, ctx.engine.count_tokens)
        rows = self._rows(input)
        names = input.label_names()
        scorer = LabelScorer(ctx.engine, names, input.calibrate)
        await scorer.prepare(lambda text: self._prompt(ctx, input, text, "" if input.is_pair() else None))
        ctx.progress(0.0, f"classifying {len(rows)} text(s)")
        results = []
        for index, (text, pair) in enumerate(rows):
            ctx.check_cancelled()
            fitted, truncated = self._fit(ctx, input, text)
            scores = await scorer.score(self._prompt(ctx, input, fitted, pair))
            results.append(self._classified(input, index, text, names, scores, truncated))
            ctx.progress((index + 1) / len(rows), f"classified {index + 1} of {len(rows)}")
        return self._output(input, results)

    # --- prompt ------------------------------------------------------------------------------
    @staticmethod
    def _system(input: ClassifyInput) -> str:
        task = input.instructions or (PRESETS[input.preset].task if input.preset else "Classify the text.")
        lines = [f"- {s.name}" + (f": {s.description}" if s.description else "") for s in input.label_specs()]
        return f"{task}\nPossible labels:\n" + "\n".join(lines) + "\nAnswer with exactly one label, nothing else."

    @staticmethod
    def _user(text: str, pair: str | None) -> str:
        return f"Premise: {text}\nHypothesis: {pair}" if pair is not None else f"Text: {text}"

    def _prompt(self, ctx: AppContext, input: ClassifyInput, text: str, pair: str | None) -> str:
        messages = [{"role": "system", "content": self._system(input)}]
        for example in input.examples:
            messages += [
                {"role": "user", "content": self._user(example.text, example.pair)},
                {"role": "assistant", "content": example.label},
            ]
        messages.append({"role": "user", "content": self._user(text, pair)})
        return ctx.engine.render(GenerationRequest(messages=messages))

    def _fit(self, ctx: AppContext, input: ClassifyInput, text: str) -> tuple[str, bool]:
        """Keep the head of a text too long for the context (the label usually shows early)."""
        count = ctx.engine.count_tokens
        room = ctx.engine.context_length - count(self._prompt(ctx, input, "", "")) - LABEL_ROOM
        tokens = count(text)
        if tokens <= room:
            return text, False
        while tokens > room:
            text = text[: int(len(text) * room / tokens * 0.95)]
            tokens = count(text)
        return text, True

    # --- results -----------------------------------------------------------------------------
    @staticmethod
    def _rows(input: ClassifyInput) -> list[tuple[str, str | None]]:
        pair_field = input.pair_field if input.is_pair() else None
        if input.data is not None:
            rows = read_rows(input.data, input.data_format, input.text_field, pair_field, MAX_TEXTS)
        elif input.texts is not None:
            if input.is_pair():
                raise AppInputError(
                    "pair tasks in batch mode need `data` with a "
                    f"{input.pair_field!r} column; `texts` holds single texts"
                )
            rows = [(t, None) for t in input.texts]
        else:
            rows = [(input.text or "", input.pair)]
        if any(not text.strip() for text, _ in rows):
            empty = next(i for i, (text, _) in enumerate(rows) if not text.strip())
            raise AppInputError(f"text number {empty + 1} is empty")
        return rows

    @staticmethod
    def _classified(
        input: ClassifyInput, index: int, text: str, names: list[str], scores, truncated: bool
    ) -> ClassifiedText:
        ranked = sorted(zip(names, scores.probabilities, scores.logprobs), key=lambda x: -x[1])
        chosen = [ranked[0][0]]
        if input.multi_label:
            cut = input.threshold or 1 / len(names)
            chosen = [name for name, p, _ in ranked if p >= cut] or chosen
        return ClassifiedText(
            index=index,
            text=text if len(text) <= 200 else text[:197] + "...",
            label=ranked[0][0],
            labels=chosen,
            probability=round(ranked[0][1], 4),
            truncated=truncated,
            scores=[LabelProbability(label=n, probability=round(p, 4), logprob=round(lp, 4)) for n, p, lp in ranked],
        )

    @staticmethod
    def _output(input: ClassifyInput, results: list[ClassifiedText]) -> ClassifyOutput:
        names = input.label_names()
        counts = Counter(label for r in results for label in r.labels)
        examples = {n: [r.text for r in results if n in r.labels][: input.examples_per_label] for n in names}
        single = results[0] if input.text is not None else None
        table = (
            None
            if single
            else to_csv(
                ["index", "label", "labels", "probability", "text"],
                [[r.index, r.label, ";".join(r.labels), r.probability, r.text] for r in results],
            )
        )
        return ClassifyOutput(
            label=single.label if single else None,
            labels=single.labels if single else [],
            scores=single.scores if single else [],
            results=results,
            counts={n: counts.get(n, 0) for n in names},
            examples=examples if not single else {},
            csv=table,
            method=CALIBRATION_NOTE if input.calibrate else RAW_NOTE,
        )
