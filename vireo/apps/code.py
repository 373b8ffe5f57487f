"""Code: generate, complete, explain, refactor, fix, translate, document or test code, and
optionally run the Python result against given tests in the sandbox."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from vireo.apps.base import App, AppContext, AppInputError
from vireo.apps.code_extract import extract_code
from vireo.apps.code_prompts import build_prompt
from vireo.apps.sandbox import SandboxLimits, SandboxUnavailable, run_python
from vireo.inference.api import GenerationRequest

NEEDS_CODE = {"complete", "explain", "refactor", "fix", "translate", "docstring", "tests"}
PROMPT_OVERHEAD = 200
# Runs every test_* function a generated test module defines, so "tests" output can be executed.
RUN_TEST_FUNCTIONS = (
    "\n\nfor _name, _fn in list(globals().items()):\n"
    "    if _name.startswith('test') and callable(_fn):\n        _fn()\n"
)


class CodeInput(BaseModel):
    task: Literal["generate", "complete", "explain", "refactor", "fix", "translate", "docstring", "tests"] = "generate"
    description: str | None = Field(
        None, max_length=20_000, description="What to write (generate), or extra instructions for any task."
    )
    code: str | None = Field(None, max_length=60_000, description="The code to work on.")
    error: str | None = Field(None, max_length=20_000, description="fix: the error message or failing behaviour.")
    language: str = Field("python", min_length=1, max_length=30, description="Language of the code.")
    target_language: str | None = Field(None, max_length=30, description="translate: the language to produce.")
    tests: str | None = Field(
        None, max_length=60_000, description="Python test code run after the result (asserts, or a check() function)."
    )
    entry_point: str | None = Field(
        None, max_length=100, description="Function name; with a check() in `tests`, check(entry_point) runs."
    )
    execute: bool = Field(False, description="Run the resulting Python code (and tests) in the sandbox.")
    timeout_s: float = Field(10.0, gt=0, le=60, description="Wall-clock limit of the sandboxed run.")
    max_tokens: int = Field(512, ge=16, le=4096)

    @model_validator(mode="after")
    def _task_has_its_inputs(self) -> "CodeInput":
        if self.task == "generate" and not (self.description or "").strip():
            raise ValueError("task 'generate' needs a description of what to write")
        if self.task in NEEDS_CODE and not (self.code or "").strip():
            raise ValueError(f"task {self.task!r} needs the code to work on in `code`")
        if self.task == "translate" and not (self.target_language or "").strip():
            raise ValueError("task 'translate' needs target_language")
        if self.execute and self.task == "explain":
            raise ValueError("an explanation cannot be executed; set execute to false")
        if self.execute and self.output_language().lower() not in ("python", "py", "python3"):
            raise ValueError(f"only Python can be executed; this task produces {self.output_language()}")
        return self

    def output_language(self) -> str:
        return (self.target_language or self.language) if self.task == "translate" else self.language


class Execution(BaseModel):
    passed: bool = Field(description="Exit code 0 within the time limit (all tests passed).")
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    isolation: str = Field(
        description="What walled the run off: bwrap (namespaces, seccomp and rlimits on "
        "the worker), remote:bwrap or remote:rlimits (the sandbox service's "
        "container), unsafe-local (an operator's opt-in: no sandbox)."
    )
    output_limited: bool = Field(False, description="The program wrote more output than allowed and was stopped.")


class CodeOutput(BaseModel):
    text: str = Field(description="The answer as the model wrote it (markdown).")
    code: str | None = Field(None, description="The code extracted from the answer (none for explain).")
    language: str
    finish_reason: str
    execution: Execution | None = None


class CodeApp(App[CodeInput]):
    name = "code"
    title = "Code"
    description = (
        "Write, complete, explain, refactor, fix, translate, document or test code; optionally run "
        "Python results against your tests in a sandbox."
    )
    Input = CodeInput
    Output = CodeOutput

    def validate_for_engine(self, input: CodeInput, engine_context_length: int, count_tokens) -> None:
        given = "\n".join(x for x in (input.description, input.code, input.error) if x)
        needed = count_tokens(given) * (2 if input.task == "complete" else 1) + input.max_tokens + PROMPT_OVERHEAD
        if needed > engine_context_length:
            raise AppInputError(
                f"the code and instructions with {input.max_tokens} new tokens need about "
                f"{needed} tokens; the model's context holds {engine_context_length}. "
                "Send less code or lower max_tokens"
            )

    async def run(self, ctx: AppContext, input: CodeInput) -> CodeOutput:
        self.validate_for_engine(input, ctx.engine.context_length, ctx.engine.count_tokens)
        prompt = build_prompt(input.task, input)
        rendered = ctx.engine.render(GenerationRequest(messages=prompt.messages)) + prompt.prefill
        request = GenerationRequest(
            prompt=rendered, sampling=ctx.sampling(temperature=0.0, max_tokens=input.max_tokens, stop=prompt.stop)
        )
        ctx.progress(0.0, f"{input.task}: writing")
        ctx.emit(prompt.prefill)
        final = await ctx.stream(request)
        answer = prompt.prefill + final.text.rstrip()
        if prompt.answer_is_code:
            ctx.emit("\n```\n")
            answer += "\n```"
        code = self._code(input, answer) if prompt.answer_is_code else None
        execution = None
        if input.execute and code is not None:
            ctx.check_cancelled()
            ctx.progress(0.8, "running the code in the sandbox")
            execution = await self._execute(input, code)
        ctx.progress(1.0, "done")
        return CodeOutput(
            text=answer,
            code=code,
            language=input.output_language(),
            finish_reason=final.finish_reason,
            execution=execution,
        )

    @staticmethod
    def _code(input: CodeInput, answer: str) -> str:
        """The extracted code; a `complete` answer that only continues the given code is joined to it."""
        code = extract_code(answer, input.output_language(), input.entry_point)
        if input.task == "complete" and (not code.strip() or code[:1] in " \t"):
            return (input.code or "").rstrip("\n") + "\n" + code
        return code

    @staticmethod
    async def _execute(input: CodeInput, code: str) -> Execution:
        if input.task == "tests":
            program = f"{input.code}\n\n{code}{RUN_TEST_FUNCTIONS}"
        else:
            # A completion restates the given code; running that first keeps imports and helpers
            # the model may have left out (its own definitions then replace the given stubs).
            given = (
                f"{input.code}\n\n"
                if input.task == "complete" and input.code is not None and input.code not in code
                else ""
            )
            program = given + code + (f"\n\n{input.tests}\n" if input.tests else "\n")
            if input.tests and input.entry_point and "def check(" in input.tests:
                program += f"\ncheck({input.entry_point})\n"
        try:
            result = await run_python(program, SandboxLimits(timeout_s=input.timeout_s))
        except SandboxUnavailable as exc:  # the job fails with the reason and the fix
            raise AppInputError(str(exc)) from exc
        return Execution(**result.to_dict())
