"""Chat eval: each reply is checked for the properties its prompt asks for (a required fact, a word
limit, a list of N items, a yes/no opening, JSON with given keys; `text_checks.py`), and the judge
grades the replies against the project's reference answers."""

from __future__ import annotations

from statistics import mean

from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs
from vireo.tools.evals.text_checks import pass_rates, run_checks, words

DATASET = "chat.json"
CI_ITEMS = 8
MAX_TOKENS = 96  # every item asks for a short reply; a longer one fails its word limit anyway


def chat_input(item: dict) -> dict:
    """The chat app's input for an item: greedy, so a run is reproducible."""
    job = {"messages": item["messages"], "max_tokens": MAX_TOKENS, "temperature": 0.0}
    return {**job, "system": item["system"]} if item.get("system") else job


def score_reply(item: dict, output: dict) -> dict:
    """One item's detail from the app's output (or {"error"}): the reply and which of its checks
    passed (a failed job passes none)."""
    reply, error = output.get("text", ""), output.get("error")
    checks = run_checks(reply, item["checks"]) if error is None else {name: False for name in item["checks"]}
    return {"id": item["id"], "reply": reply, "checks": checks, "error": error}


def metrics_of(details: list[dict]) -> dict:
    return {
        "check_pass_rate": pass_rates([d["checks"] for d in details]),
        "failed": sum(d["error"] is not None for d in details),
        "mean_reply_words": round(mean(len(words(d["reply"])) for d in details), 1),
    }


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    items = load(DATASET)["items"]
    items = items[:limit] if limit else items if full else items[:CI_ITEMS]
    outputs = run_jobs(runner, [("chat", chat_input(item), {}) for item in items], concurrency)
    details = [score_reply(item, out) for item, out in zip(items, outputs)]
    return {"dataset": describe(DATASET, len(items), full), "metrics": metrics_of(details), "items": details}


def conversation_text(item: dict) -> str:
    """The conversation as the judge reads it: the system prompt, then each turn by role."""
    turns = ([f"System: {item['system']}"] if item.get("system") else []) + [
        f"{m['role'].capitalize()}: {m['content']}" for m in item["messages"]
    ]
    return "Reply to the last user message of this conversation.\n\n" + "\n".join(turns)


def judge_items(details: list[dict]) -> list[dict]:
    """What the judge grades: each reply, after its conversation, against the reference answer."""
    items = {item["id"]: item for item in load(DATASET)["items"]}
    return [
        {
            "id": d["id"],
            "question": conversation_text(items[d["id"]]),
            "answer": d["reply"],
            "reference": items[d["id"]].get("reference"),
        }
        for d in details
    ]
