"""Schemathesis hooks for the input_fuzz drill (loaded through SCHEMATHESIS_HOOKS).

Generated requests keep what the fuzzer chose, with three changes that send them past the first
check into the code behind it:
- a job's `app` names a real app (the fuzzer cannot know the names), so each app's own input model
  and length checks meet the fuzzer's inputs; an OpenAI request's `model` names the served one;
- generation is capped at a few tokens: the worker runs every job the fuzzer manages to submit, on a
  CPU, and the OpenAI routes wait for theirs, so the drill's run time stays bounded.
Only string values are replaced, so a request the schema refuses stays refused.
"""

from __future__ import annotations

import zlib

import schemathesis

APPS = ("chat", "echo", "summarize", "classify", "generate", "translate", "judge", "code", "rag", "rag_ingest")
MAX_TOKENS = 8
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    if isinstance(body.get("app"), str):
        body["app"] = APPS[zlib.crc32(repr(body.get("input")).encode()) % len(APPS)]
        if isinstance(body.get("options", {}), dict):  # a job: its options cap every app's generation
            body.setdefault("options", {}).setdefault("max_tokens", MAX_TOKENS)
    if isinstance(body.get("model"), str):
        body["model"] = "default"
    for holder in (body, body.get("options"), body.get("input")):
        if isinstance(holder, dict):
            for field in TOKEN_FIELDS:
                value = holder.get(field)
                if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
                    holder[field] = MAX_TOKENS
