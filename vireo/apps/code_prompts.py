"""Prompts for the code app, one per task.

Small models write far better code when the answer is started for them: every code-producing
task pre-fills the assistant turn with an opening fence, so the model's first token is code and a
closing fence ends it. `complete` asks for the whole function again (as EvalPlus prompts chat
models) rather than a bare continuation: instruct models close a half-written block early.
"""

from __future__ import annotations

from dataclasses import dataclass

CODE_TASKS = ("generate", "complete", "explain", "refactor", "fix", "translate", "docstring", "tests")
# Top-level lines that start demo code after a completed function (indented lines never match).
PYTHON_COMPLETION_STOPS = ["```", "\nif __name__", "\nprint(", "\nassert ", "\n# Test", "\n# Example"]


@dataclass
class CodePrompt:
    messages: list[dict]
    prefill: str  # the start of the assistant's answer, already written
    stop: list[str]
    answer_is_code: bool


def fence_tag(language: str) -> str:
    return {"c++": "cpp", "c#": "csharp"}.get(language.lower(), language.lower())


def system_prompt(language: str) -> str:
    return (
        f"You are an expert {language} programmer. You write correct, idiomatic, well-tested code and answer precisely."
    )


def user_prompt(task: str, input) -> str:
    lang, code = input.language, f"```{fence_tag(input.language)}\n{(input.code or '').rstrip()}\n```"
    extra = f"\n\nAdditional instructions: {input.description}" if input.description and task != "generate" else ""
    prompts = {
        "generate": f"Write {lang} code for the following task.\n\n{input.description}",
        "complete": f"Complete the following {lang} code. Write the complete, self-contained code, including "
        f"the given signature and imports, in one code block.\n\n{code}",
        "explain": f"Explain what the following {lang} code does, step by step, in plain words.\n\n{code}",
        "refactor": f"Refactor the following {lang} code for readability without changing its behaviour.\n\n{code}",
        "fix": f"The following {lang} code has a bug."
        + (f" Running it gives this error:\n\n{input.error}\n" if input.error else "")
        + f"\nFix the bug and return the corrected code.\n\n{code}",
        "translate": f"Translate the following {lang} code to {input.target_language}, keeping its behaviour."
        f"\n\n{code}",
        "docstring": f"Add clear docstrings and comments to the following {lang} code. Return the full code.\n\n{code}",
        "tests": f"Write unit tests for the following {lang} code. Use plain assert statements"
        f"{' in test functions runnable with pytest' if lang == 'python' else ''}.\n\n{code}",
    }
    return prompts[task] + extra


def build_prompt(task: str, input) -> CodePrompt:
    """Messages, pre-filled answer and stop strings for one task."""
    messages = [
        {"role": "system", "content": system_prompt(input.language)},
        {"role": "user", "content": user_prompt(task, input)},
    ]
    if task == "explain":
        return CodePrompt(messages, "", [], answer_is_code=False)
    out_language = input.target_language if task == "translate" else input.language
    prefill = f"```{fence_tag(out_language)}\n"
    python_completion = task == "complete" and out_language.lower() == "python"
    return CodePrompt(messages, prefill, PYTHON_COMPLETION_STOPS if python_completion else ["```"], answer_is_code=True)
