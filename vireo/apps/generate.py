"""Generate: content from a template (ad copy, product description, story, script, email) with
variables, tone and length, in `n` variants at once (one seed each, so each is reproducible)."""

from __future__ import annotations

import asyncio
import random
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, AppInputError
from vireo.apps.generate_templates import LENGTH_WORDS, TEMPLATES
from vireo.inference.api import Finished, GenerationRequest

SYSTEM = "You are a skilled copywriter and author. Write exactly what is asked, ready to use, with no preamble."


class GenerateInput(BaseModel):
    template: Literal["ad_copy", "product_description", "story", "script", "email", "custom"] = Field(
        "custom",
        description="What to write; each template has its own variables.",
        # x-variables: each template's variables, for clients' forms
        json_schema_extra={
            "x-variables": {
                name: {"required": list(t.required), "optional": list(t.optional)} for name, t in TEMPLATES.items()
            }
        },
    )
    variables: dict[str, str] = Field(
        default_factory=dict, max_length=20, description="Values for the template's variables."
    )
    instructions: str | None = Field(
        None, max_length=4000, description="Extra instructions; the whole brief for the custom template."
    )
    tone: Literal["neutral", "friendly", "professional", "playful", "persuasive", "formal", "humorous"] = "neutral"
    length: Literal["short", "medium", "long"] = "medium"
    n: int = Field(1, ge=1, le=8, description="How many variants to write.")
    seed: int | None = Field(None, description="Seed of the first variant; variant i uses seed + i.")
    temperature: float = Field(0.7, gt=0, le=2, description="Higher gives more varied variants.")

    @model_validator(mode="after")
    def _variables_fit_template(self) -> "GenerateInput":
        template = TEMPLATES[self.template]
        if self.template == "custom" and not (self.instructions or "").strip():
            raise ValueError("the custom template needs `instructions` saying what to write")
        missing = [k for k in template.required if not self.variables.get(k, "").strip()]
        accepted = template.required + template.optional
        unknown = sorted(set(self.variables) - set(accepted))
        if missing or unknown:
            problems = ([f"missing: {', '.join(missing)}"] if missing else []) + (
                [f"unknown: {', '.join(unknown)}"] if unknown else []
            )
            raise ValueError(
                f"template {self.template!r} variables {'; '.join(problems)} "
                f"(accepted: {', '.join(accepted) or 'none'})"
            )
        return self


class Variant(BaseModel):
    text: str
    seed: int
    finish_reason: str
    completion_tokens: int


class GenerateOutput(BaseModel):
    variants: list[Variant]
    brief: str = Field(description="The brief the model was given.")


class GenerateApp(App[GenerateInput]):
    name = "generate"
    title = "Generate"
    description = "Write ad copy, product descriptions, stories, scripts or emails from a template, in variants."
    Input = GenerateInput
    Output = GenerateOutput

    @staticmethod
    def brief(input: GenerateInput) -> str:
        template = TEMPLATES[input.template]
        parts = [template.render(input.variables)] if template.brief else []
        parts += [input.instructions.strip()] if input.instructions and input.instructions.strip() else []
        tone = "" if input.tone == "neutral" else f" Use a {input.tone} tone."
        return "\n".join(parts) + f"\nLength: about {LENGTH_WORDS[input.length]} words.{tone}"

    def validate_for_engine(self, input: GenerateInput, engine_context_length: int, count_tokens) -> None:
        needed = count_tokens(SYSTEM + self.brief(input)) + self._max_tokens(input) + 32
        if needed > engine_context_length:
            raise AppInputError(
                f"the brief and a {input.length} text need {needed} tokens; the model's "
                f"context holds {engine_context_length}. Shorten the brief or the length"
            )

    @staticmethod
    def _max_tokens(input: GenerateInput) -> int:
        return int(LENGTH_WORDS[input.length] * 1.8) + 32

    async def run(self, ctx: AppContext, input: GenerateInput) -> GenerateOutput:
        brief = self.brief(input)
        first_seed = input.seed if input.seed is not None else random.randrange(2**31)
        seeds = [first_seed + i for i in range(input.n)]
        ctx.progress(0.0, f"writing {input.n} variant(s)")
        done = 0

        async def write(seed: int) -> Finished:
            nonlocal done
            ctx.check_cancelled()
            request = GenerationRequest(
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": brief}],
                sampling=ctx.sampling(
                    temperature=input.temperature, top_p=0.95, max_tokens=self._max_tokens(input), seed=seed
                ),
            )
            final = await ctx.stream(request, emit=input.n == 1)  # interleaved tokens of n>1 would be noise
            done += 1
            if input.n > 1:
                ctx.emit(f"--- variant {seeds.index(seed) + 1} (seed {seed}) ---\n{final.text.strip()}\n\n")
            ctx.progress(done / input.n, f"{done} of {input.n} variants written")
            return final

        finals = await asyncio.gather(*(write(seed) for seed in seeds))
        return GenerateOutput(
            brief=brief,
            variants=[
                Variant(
                    text=f.text.strip(),
                    seed=seed,
                    finish_reason=f.finish_reason,
                    completion_tokens=f.usage.completion_tokens,
                )
                for f, seed in zip(finals, seeds)
            ],
        )
