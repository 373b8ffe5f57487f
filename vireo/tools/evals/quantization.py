"""Quality of quantized checkpoints: perplexity on held-out text, CPU, side by side with fp32,
and the code app's HumanEval pass@1 of the same checkpoints.

    python -m vireo.tools.evals.quantization --model qwen2.5-coder-0.5b \
        --variants fp32,bf16,int8-rtn,int4-g128-rtn \
        --json benchmarks/results/quality/quantization-qwen2.5-coder-0.5b.json

Texts: `benchmarks/data/heldout_text.txt` (prose written for the project) and the held-out
20 % of the Python docs shipped with the standard library (calibration uses the other 80 %).
Quantized variants are the checkpoint folders `vireo quantize` and `vireo eval --quant` share
(made here if missing). pass@1 is not run here: it is read from the result files of
`vireo eval code --full` on the same model and weights (the single HumanEval runner).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import torch

from vireo.inference.quant import calibration as calib
from vireo.inference.quant.hf_model import load_quantized
from vireo.inference.quant.quantize import ensure_checkpoint, weights_origin
from vireo.tools.machine import machine_info
from vireo.tools.paths import DATA, RESULTS

HELDOUT_FILE = DATA / "heldout_text.txt"
QUALITY_RESULTS = RESULTS / "quality"


def heldout_text() -> str:
    """The project's held-out prose, without its comment header."""
    lines = HELDOUT_FILE.read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")).strip()


@torch.no_grad()
def perplexity(model, tokenizer, text: str, window: int = 512, max_tokens: int | None = None) -> float:
    """exp(mean next-token loss) over consecutive non-overlapping windows of the text."""
    ids = tokenizer(text, return_tensors="pt").input_ids[0]
    if max_tokens:
        ids = ids[:max_tokens]
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start : start + window][None]
        if chunk.shape[1] < 2:
            break
        logits = model(chunk, use_cache=False).logits[0, :-1].float()
        total += torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum").item()
        count += chunk.shape[1] - 1
    return math.exp(total / count)


def _code_runs(path: Path) -> list[dict]:
    """The runs one `vireo eval code` result file holds: one, or a comparison's two sides."""
    result = json.loads(path.read_text())
    if "experiment" in result:  # a one-off driver changed the app (e.g. its prompt): not the eval
        return []
    sides = [result["base"], result["variant"]] if result.get("kind") == "comparison" else [result]
    for side in sides:  # files from before quant/spec existed ran the defaults
        side.setdefault(
            "config", {"model": result.get("model"), "backend": result.get("backend"), "quant": "none", "spec": "off"}
        )
    return [
        {
            **side,
            "file": path.name,
            "date": result["date"],
            "subset": result["dataset"]["subset"],
            "machine": result["machine"],
        }
        for side in sides
    ]


def humaneval_pass_at_1(model: str, quant: str, results: Path = QUALITY_RESULTS) -> dict | None:
    """pass@1 of `vireo eval code --full` (native engine, greedy) on `model` with weights `quant`
    ('none', 'int8-rtn', 'int4-rtn-g128', ...), from the newest result file that has it."""
    runs = [
        run
        for path in sorted(results.glob("code*.json"))
        for run in _code_runs(path)
        if run["config"] == {"model": model, "backend": "native", "quant": quant, "spec": "off"}
        and run["subset"] == "full"
    ]
    if not runs:
        return None
    run = max(runs, key=lambda r: r["date"])
    return {
        **{k: run["metrics"][k] for k in ("pass@1", "passed", "problems")},
        "file": run["file"],
        "date": run["date"],
        "duration_s": run["duration_s"],
        "load_average_at_start": run["machine"].get("load_average_at_start"),
    }


VARIANTS = {  # name: (method, bits, group size); None method = unquantized at that dtype
    "fp32": (None, None, torch.float32),
    "bf16": (None, None, torch.bfloat16),
    "int8-rtn": ("rtn", 8, 128),
    "int4-g128-rtn": ("rtn", 4, 128),
    "int4-g128-awq": ("awq", 4, 128),
    "int4-g128-gptq": ("gptq", 4, 128),
    "int4-g64-rtn": ("rtn", 4, 64),
    "int4-g64-gptq": ("gptq", 4, 64),
    "int4-g32-rtn": ("rtn", 4, 32),
}


def quant_name(method: str | None, bits: int | None, group_size) -> str:
    """The `--quant` name the evals record for these weights ('none' for fp32, the engine's dtype)."""
    if method is None:
        return "none" if group_size == torch.float32 else "none-" + str(group_size).removeprefix("torch.")
    return f"int{bits}-{method}" + (f"-g{group_size}" if bits == 4 else "")


def _load(model_name: str, source: Path, method, bits, extra):
    """The HF model of one variant and, for quantized ones, its checkpoint's quantization.json."""
    from transformers import AutoModelForCausalLM

    if method is None:
        return AutoModelForCausalLM.from_pretrained(source, dtype=extra).eval(), None
    folder = ensure_checkpoint(model_name, method, bits, extra)
    return load_quantized(folder), {**json.loads((folder / "quantization.json").read_text()), "checkpoint": folder.name}


def evaluate(model_name: str = "smollm2-135m", variants: list[str] | None = None, docs_tokens: int = 4096) -> dict:
    """Load (quantizing if needed) and score each variant; one JSON-ready report."""
    from transformers import AutoTokenizer

    from vireo.inference.registry import ModelRegistry

    source = ModelRegistry().resolve(model_name).path
    tokenizer = AutoTokenizer.from_pretrained(source)
    texts = {"heldout_prose": (heldout_text(), None), "python_docs_heldout": (calib.heldout_docs_text(), docs_tokens)}
    rows = []
    for name in variants or list(VARIANTS):
        method, bits, extra = VARIANTS[name]
        started = time.time()
        model, info = _load(model_name, source, method, bits, extra)
        row = {
            "variant": name,
            "method": method or "none",
            "bits": bits or 16,
            "group_size": extra if method and bits == 4 else None,
            "load_seconds": round(time.time() - started, 1),
            "checkpoint": info,
        }
        for text_name, (text, limit) in texts.items():
            row[f"ppl_{text_name}"] = round(perplexity(model, tokenizer, text, max_tokens=limit), 4)
        row["humaneval"] = humaneval_pass_at_1(model_name, quant_name(method, bits, extra))
        rows.append(row)
        del model
        print(json.dumps(row), flush=True)
    base = {k: v for k, v in rows[0].items() if k.startswith("ppl_")}
    for row in rows:
        for key, ref in base.items():
            row[key.replace("ppl_", f"ppl_vs_{rows[0]['variant']}_")] = round(row[key] / ref, 4)
    return {
        "model": model_name,
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
        "weights_origin": weights_origin(model_name),
        "texts": {
            "heldout_prose": str(HELDOUT_FILE.name),
            "python_docs_heldout": f"last 20 % of pydoc_data.topics, first {docs_tokens} tokens",
        },
        "humaneval": "pass@1 of `vireo eval code --full` on the same weights, read from its result file "
        "(humaneval_pass_at_1); null where no such run exists",
        "results": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, the first is the reference: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--docs-tokens", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate(args.model, args.variants.split(","), docs_tokens=args.docs_tokens)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
