"""Quality of quantized checkpoints: perplexity on held-out text, CPU, side by side with fp32.

    python -m vireo.inference.quantize_eval --json benchmarks/results/quality/quantization.json

Texts: `benchmarks/data/heldout_text.txt` (prose written for the project) and the held-out
20 % of the Python docs shipped with the standard library (calibration uses the other 80 %).
HumanEval pass@1 needs the code app: `humaneval_pass_at_1` is the hook, pending.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import torch

from vireo.inference import quant_calibration as calib
from vireo.inference.quantize import (load_quantized, quantization_info, quantize_model_,
                                      save_quantized)

HELDOUT_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "heldout_text.txt"


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
        chunk = ids[start:start + window][None]
        if chunk.shape[1] < 2:
            break
        logits = model(chunk, use_cache=False).logits[0, :-1].float()
        total += torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum").item()
        count += chunk.shape[1] - 1
    return math.exp(total / count)


def humaneval_pass_at_1(model_dir: Path) -> float | None:
    """Hook for the code app's HumanEval run on a quantized checkpoint: pending (None)."""
    return None


VARIANTS = [  # (name, method, bits, group size); None method = unquantized at that dtype
    ("fp32", None, None, torch.float32), ("bf16", None, None, torch.bfloat16),
    ("int8-rtn", "rtn", 8, 0), ("int4-g128-rtn", "rtn", 4, 128), ("int4-g128-awq", "awq", 4, 128),
    ("int4-g128-gptq", "gptq", 4, 128), ("int4-g64-rtn", "rtn", 4, 64),
    ("int4-g64-gptq", "gptq", 4, 64), ("int4-g32-rtn", "rtn", 4, 32),
]


def evaluate(model_name: str = "smollm2-135m", variants=VARIANTS, calib_samples: int = 16,
             docs_tokens: int = 4096) -> dict:
    """Quantize, save, reload and score each variant; one JSON-ready report."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vireo.inference.registry import ModelRegistry

    source = ModelRegistry().resolve(model_name).path
    tokenizer = AutoTokenizer.from_pretrained(source)
    texts = {"heldout_prose": (heldout_text(), None),
             "python_docs_heldout": (calib.heldout_docs_text(), docs_tokens)}
    rows = []
    for name, method, bits, extra in variants:
        started = time.time()
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=extra if method is None else torch.float32).eval()
        if method is not None:
            quantize_model_(model, method, bits, extra or 128, tokenizer, calib_samples)
            with tempfile.TemporaryDirectory() as tmp:  # score what a reload gives back
                save_quantized(model, Path(tmp), source, quantization_info(method, bits, extra))
                model = load_quantized(Path(tmp))
        quant_s = time.time() - started
        row = {"variant": name, "method": method or "none", "bits": bits or 16,
               "group_size": extra if method and bits == 4 else None,
               "quantize_seconds": round(quant_s, 1)}
        for text_name, (text, limit) in texts.items():
            row[f"ppl_{text_name}"] = round(perplexity(model, tokenizer, text, max_tokens=limit), 4)
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = {k: v for k, v in rows[0].items() if k.startswith("ppl_")}
    for row in rows:
        for key, ref in base.items():
            row[key.replace("ppl_", "ppl_vs_fp32_")] = round(row[key] / ref, 4)
    return {"model": model_name, "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()} CPU, torch {torch.__version__}",
            "calibration": f"{calib_samples} windows x 512 tokens of Python docs (first 80 %)",
            "texts": {"heldout_prose": str(HELDOUT_FILE.name),
                      "python_docs_heldout": f"last 20 % of pydoc_data.topics, first {docs_tokens} tokens"},
            "humaneval_pass_at_1": "pending: needs the code app (hook humaneval_pass_at_1)",
            "results": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--calib-samples", type=int, default=16)
    parser.add_argument("--docs-tokens", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate(args.model, calib_samples=args.calib_samples, docs_tokens=args.docs_tokens)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
