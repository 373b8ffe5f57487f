"""Echo: streams the input back word by word without a model — for health checks and for measuring
the platform's own overhead (API + queue + events) with no engine time in the way."""

from __future__ import annotations

from pydantic import BaseModel, Field

from vireo.apps.base import App, AppContext


class EchoInput(BaseModel):
    text: str = Field(..., min_length=1, max_length=10_000)


class EchoOutput(BaseModel):
    text: str


class EchoApp(App[EchoInput]):
    name = "echo"
    title = "Echo (diagnostics)"
    description = "Returns the text unchanged, streamed word by word; no model involved."
    Input = EchoInput
    Output = EchoOutput

    async def run(self, ctx: AppContext, input: EchoInput) -> EchoOutput:
        ctx.first_token()
        for i, word in enumerate(input.text.split(" ")):
            ctx.check_cancelled()
            ctx.emit(word if i == 0 else " " + word)
        ctx.progress(1.0, "done")
        return EchoOutput(text=input.text)
