"""Render the quality results under benchmarks/results/quality/ as Markdown tables: one row per
headline metric of each single run, one row per metric of each base-vs-variant comparison.

`vireo eval all` prints them; `vireo eval all --write-readme` also puts them into
benchmarks/README.md between the `eval-table` markers.
"""

from __future__ import annotations

import json
from pathlib import Path

from vireo.tools.evals.harness import COMMITTED_RESULTS as RESULTS

README = RESULTS.parents[1] / "README.md"
START, END = "<!-- eval-table:start -->", "<!-- eval-table:end -->"


def _check_rates(metrics: dict) -> dict:
    """Apps graded by text checks (`text_checks.py`): the share of items passing each check."""
    return {
        **{f"passed {name}": rate for name, rate in metrics["check_pass_rate"].items()},
        "failed": metrics["failed"],
    }


HEADLINES = {  # which metrics make the table, per app
    "code": lambda m: {"pass@1": m["pass@1"], "passed": f"{m['passed']}/{m['problems']}"},
    "classify": lambda m: {k: f"acc {v['accuracy']}, F1 {v['macro_f1']}" for k, v in m.items()},
    "translate": lambda m: {k: f"chrF {v['chrf']}, BLEU {v['bleu']}" for k, v in m.items()},
    "summarize": lambda m: {k: m[k] for k in ("rouge1", "rouge2", "rougeL", "failed")},
    "rag": lambda m: {k: m[k] for k in ("retrieval_recall_at_3", "contains_answer", "token_f1")},
    "judge": lambda m: {f"{k} agreement": v["agreement"] for k, v in m.items() if isinstance(v, dict)},
    "chat": _check_rates,
    "generate": _check_rates,
}
# comparisons show the metrics whose change means something (the rest is in the JSON)
COMPARED = (
    "rouge1",
    "rouge2",
    "rougeL",
    "mean_summary_words",
    "failed",
    "mean.accuracy",
    "mean.macro_f1",
    "pass@1",
    "check_pass_rate.all",
)


def _results(folder: Path) -> list[tuple[Path, dict]]:
    return [(path, json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]


def _config_text(result: dict) -> str:
    config = result.get("config") or {"model": result.get("model"), "backend": result.get("backend")}
    return ", ".join(f"{k}={v}" for k, v in config.items() if v not in (None, "none", "off"))


def rows(folder: Path = RESULTS) -> list[list[str]]:
    table = []
    for path, result in _results(folder):
        headline = HEADLINES.get(result.get("app", ""))
        if headline is None or result.get("kind") == "comparison":
            continue
        dataset = result["dataset"]
        metrics = dict(headline(result["metrics"]))
        if (result.get("judge") or {}).get("mean_score") is not None:
            metrics[f"judge score 1-10 ({result['judge']['judge']['model']})"] = result["judge"]["mean_score"]
        for metric, value in metrics.items():
            table.append(
                [
                    result["app"],
                    _config_text(result),
                    metric,
                    str(value),
                    f"{dataset['items']} ({dataset['subset']})",
                    result["date"][:10],
                    path.name,
                ]
            )
    return table


def _judge_rows(judge: dict | None) -> dict[str, str]:
    out = {}
    for method in ("labels", "likelihood"):
        if judge and method in judge:
            j = judge[method]
            out[f"judge {method} ({judge['judge']['model']}): base/variant/tie/inconsistent"] = (
                f"{j['base_wins']}/{j['variant_wins']}/{j['ties']}/{j['inconsistent']}"
            )
    if judge:
        out["identical outputs"] = f"{judge.get('identical_outputs', 0)} of {judge['judged']}"
    return out


def comparison_rows(folder: Path = RESULTS) -> list[list[str]]:
    table = []
    for path, result in _results(folder):
        if result.get("kind") != "comparison":
            continue
        varied = ", ".join(f"{k}={v}" for k, v in result["varied"].items())
        base = _config_text(result["base"])
        for metric, d in result["differences"].items():
            if metric in COMPARED:
                table.append(
                    [
                        result["app"],
                        base,
                        varied,
                        metric,
                        str(d["base"]),
                        str(d["variant"]),
                        f"{d['delta']:+}",
                        path.name,
                    ]
                )
        for metric, value in _judge_rows(result.get("judge")).items():
            table.append([result["app"], base, varied, metric, "", value, "", path.name])
    return table


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in body
    ]


def markdown(folder: Path = RESULTS) -> str:
    lines = _table(["app", "configuration", "metric", "value", "items", "date", "file"], rows(folder))
    compared = comparison_rows(folder)
    if compared:
        lines += ["", *_table(["app", "base", "variant", "metric", "base", "variant", "delta", "file"], compared)]
    return "\n".join(lines)


def update_readme(readme: Path = README, folder: Path = RESULTS) -> str:
    """Replace the text between the eval-table markers of `readme` with the current tables."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise KeyError(f"{readme} has no {START} ... {END} section to fill")
    table = markdown(folder)
    head, rest = text.split(START, 1)
    readme.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")
    return table


if __name__ == "__main__":
    print(markdown())
