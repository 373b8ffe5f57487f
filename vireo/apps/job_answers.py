"""The question a finished job answered and the answer it gave, as text the judge can grade.

Each text app has its own input and output shape; `question_and_answer(job)` reads the fields
that matter (summarize: the text and the summary; chat: the last user turn and the reply; ...).
"""

from __future__ import annotations

from typing import Callable

from vireo.apps.base import AppInputError, FinishedJob


def _chat_question(job_input: dict) -> str:
    users = [m["content"] for m in job_input.get("messages") or [] if m.get("role") == "user"]
    return users[-1] if users else job_input.get("prompt") or ""


READERS: dict[str, Callable[[dict, dict], tuple[str, str]]] = {
    "summarize": lambda i, r: (f"Summarize this text.\n\n{i['text']}", r["summary"]),
    "chat": lambda i, r: (_chat_question(i), r["text"]),
    "generate": lambda i, r: (r["brief"], r["variants"][0]["text"]),
    "translate": lambda i, r: (f"Translate into {r['target']}:\n\n{i['text']}", r["text"]),
    "code": lambda i, r: ("\n\n".join(filter(None, [i.get("description"), i.get("code")])), r["text"]),
    "rag": lambda i, r: (i["question"], r["answer"]),
    "echo": lambda i, r: (i["text"], r["text"]),
}


def question_and_answer(job: FinishedJob) -> tuple[str, str]:
    """(question, answer) of a succeeded job of a text app."""
    reader = READERS.get(job.app)
    if reader is None:
        raise AppInputError(f"job {job.id} is a {job.app} job; the judge grades jobs of {', '.join(sorted(READERS))}")
    return reader(job.input, job.result)
