"""Generate eval: each brief asks for 2 seeded variants; the checks are that both came back and
differ, and that each variant names the brief's terms (the product, the given names) and keeps to
the requested length band. The judge grades the first variant of each brief."""

from __future__ import annotations

from statistics import mean

from vireo.apps.generate_templates import LENGTH_WORDS
from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs
from vireo.tools.evals.text_checks import pass_rates, run_checks, words

DATASET = "generate.json"
CI_ITEMS = 8
VARIANTS = 2
SEED = 1234
LENGTH_BAND = (0.5, 1.5)  # of the app's target words for the length: "about 60 words" may be 30-90


def generate_input(item: dict) -> dict:
    job = {key: item[key] for key in ("template", "tone", "length") if key in item}
    job.update(variables=item.get("variables", {}), n=VARIANTS, seed=SEED)
    return {**job, "instructions": item["instructions"]} if item.get("instructions") else job


def word_band_for(length: str) -> list[int]:
    target = LENGTH_WORDS[length]
    return [round(target * LENGTH_BAND[0]), round(target * LENGTH_BAND[1])]


def variant_checks(item: dict, text: str) -> dict[str, bool]:
    """Checks on one variant: the brief's terms are named and the length is within its band."""
    return run_checks(text, {"mentions": item["must_mention"], "word_band": word_band_for(item["length"])})


def score_output(item: dict, output: dict) -> dict:
    """One item's detail from the app's output (or {"error"}): its variants, their checks, and
    whether all `VARIANTS` came back distinct. A variant check passes when every variant passes it."""
    texts, error = [v["text"] for v in output.get("variants", [])], output.get("error")
    per_variant = [variant_checks(item, text) for text in texts]
    checks = {
        name: error is None and bool(per_variant) and all(v[name] for v in per_variant)
        for name in ("mentions", "word_band")
    }
    checks["n_returned"] = error is None and len(texts) == VARIANTS
    checks["distinct"] = error is None and len({t.strip() for t in texts}) == len(texts) > 1
    return {
        "id": item["id"],
        "brief": output.get("brief", ""),
        "variants": texts,
        "word_counts": [len(words(t)) for t in texts],
        "word_band": word_band_for(item["length"]),
        "checks": checks,
        "error": error,
    }


def metrics_of(details: list[dict]) -> dict:
    counts = [n for d in details for n in d["word_counts"]]
    return {
        "check_pass_rate": pass_rates([d["checks"] for d in details]),
        "failed": sum(d["error"] is not None for d in details),
        "mean_variant_words": round(mean(counts), 1) if counts else 0.0,
    }


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    items = load(DATASET)["items"]
    items = items[:limit] if limit else items if full else items[:CI_ITEMS]
    outputs = run_jobs(runner, [("generate", generate_input(item), {}) for item in items], concurrency)
    details = [score_output(item, out) for item, out in zip(items, outputs)]
    return {"dataset": describe(DATASET, len(items), full), "metrics": metrics_of(details), "items": details}


def judge_items(details: list[dict]) -> list[dict]:
    """What the judge grades: the first variant of each brief (there is no reference text)."""
    return [
        {"id": d["id"], "question": d["brief"], "answer": d["variants"][0] if d["variants"] else "", "reference": None}
        for d in details
    ]
