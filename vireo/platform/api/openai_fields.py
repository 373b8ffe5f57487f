"""Which OpenAI request fields the server honours, which it accepts and ignores, which it refuses.

The request models declare what we honour and let anything else through to `refuse_unsupported`:
a field that would change the answer and that we cannot honour is a 400 that names it, never
silence. A field at its neutral value (a penalty of 0, an empty `logit_bias`, `logprobs: false`),
or null, changes nothing and passes; so do OpenAI's bookkeeping fields (`user`, `metadata`, ...),
which have no effect on an answer. docs/OPENAI.md has the table.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from pydantic import BaseModel

IGNORED = {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
NEUTRAL: dict[str, tuple] = {
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "logit_bias": ({},),
    "logprobs": (False, 0),
    "top_logprobs": (0,),
    "modalities": (["text"],),
    "best_of": (1,),
    "echo": (False,),
    "suffix": ("",),
    "include_obfuscation": (False, True),  # stream padding against side channels: we add none
}
WHY = {
    "frequency_penalty": "the sampler has no penalties",
    "presence_penalty": "the sampler has no penalties",
    "logit_bias": "the sampler takes no logit bias",
    "logprobs": "chat replies carry no log-probabilities; /v1/completions gives them (logprobs, echo)",
    "top_logprobs": "chat replies carry no log-probabilities; /v1/completions gives them (logprobs, echo)",
    "functions": "use `tools`",
    "function_call": "use `tool_choice` (or, in a message, `tool_calls`)",
    "audio": "the server answers in text only",
    "modalities": "the server answers in text only",
    "best_of": "use `n`",
    "echo": "only /v1/completions echoes the prompt",
    "suffix": "no insertion mode",
    "reasoning_effort": "the served model does not reason",
}
KNOWN_PART_TYPES = {"text", "image_url"}


def _refuse(where: str, why: str | None) -> HTTPException:
    return HTTPException(
        status.HTTP_400_BAD_REQUEST,
        f"{where} is not supported by this server"
        + (f" ({why})" if why else "")
        + "; docs/OPENAI.md lists the supported fields",
    )


def refuse_unsupported(body: BaseModel, where: str = "") -> None:
    """400 naming the first field of `body` (or of its messages) that this server cannot honour."""
    for name, value in (body.model_extra or {}).items():
        if value is None or name in IGNORED or value in NEUTRAL.get(name, ()):
            continue
        neutral = NEUTRAL.get(name)
        why = "; ".join(filter(None, [WHY.get(name), f"leave it out or send {neutral[0]!r}" if neutral else None]))
        raise _refuse(f"{where}{name}", why or None)
    for field_name in type(body).model_fields:
        child = getattr(body, field_name)
        if isinstance(child, BaseModel):
            refuse_unsupported(child, f"{where}{field_name}.")
        elif isinstance(child, list):
            for i, item in enumerate(child):
                if isinstance(item, BaseModel):
                    refuse_unsupported(item, f"{where}{field_name}[{i}].")
                elif isinstance(item, dict) and field_name == "content" and item.get("type") not in KNOWN_PART_TYPES:
                    raise _refuse(
                        f"{where}content[{i}] of type {item.get('type')!r}", "message parts may be text or image_url"
                    )
