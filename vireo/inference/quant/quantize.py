"""`vireo quantize`: int8 / int4 weight-only quantization of an HF causal LM by RTN, AWQ or GPTQ,
written as a checkpoint folder the native engine and vLLM both load (`format.py`).

    vireo quantize smollm2-135m --method gptq --bits 4 --group-size 128 --out DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vireo.inference.quant import awq
from vireo.inference.quant import calibration as calib
from vireo.inference.quant.format import WEIGHTS_FILE, is_quantized_folder, quantization_info, read_info
from vireo.inference.quant.gptq import HessianAccumulator, gptq_quantize
from vireo.inference.quant.hf_model import replace_linear, save_quantized
from vireo.inference.quant.rtn import quantize_weight
from vireo.kernels.qweight import Int4Weight, Int8Weight

METHODS = ("rtn", "awq", "gptq")


# Linears that read the same input share one Hessian: GPTQ runs once on their stacked rows.
SHARED_INPUT = (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("mlp.gate_proj", "mlp.up_proj"))


def _input_groups(names: list[str]) -> list[list[str]]:
    groups = [[n for n in shared if n in names] for shared in SHARED_INPUT]
    groups = [g for g in groups if g]
    grouped = {n for g in groups for n in g}
    return groups + [[n] for n in names if n not in grouped]


def _split_columns(w: Int8Weight | Int4Weight, sizes: list[int]) -> list:
    """Split a quantized weight of stacked output channels back into its linears."""
    q_parts = w.qweight.split(sizes, dim=1)
    s_parts = w.scales.split(sizes, dim=-1)
    if isinstance(w, Int8Weight):
        return [Int8Weight(q.contiguous(), s.contiguous()) for q, s in zip(q_parts, s_parts)]
    z_parts = w.zeros.split(sizes, dim=1)
    return [
        Int4Weight(q.contiguous(), s.contiguous(), z.contiguous(), w.group_size, w.in_features)
        for q, s, z in zip(q_parts, s_parts, z_parts)
    ]


def _gptq_layer(layer, inputs: calib.LayerInputs, bits: int, group_size: int) -> None:
    """Accumulate the input Hessians over the calibration batches, then GPTQ each input group."""
    linears = calib.layer_linears(layer)
    groups = _input_groups(list(linears))
    firsts = {g[0]: linears[g[0]] for g in groups}
    hessians = {name: HessianAccumulator(m.in_features) for name, m in firsts.items()}
    with torch.no_grad(), calib.record_inputs(firsts, lambda n, x: hessians[n].add(x)):
        calib.run_layer(layer, inputs)
    for group in groups:
        stacked = torch.cat([linears[n].weight.detach() for n in group])
        q = gptq_quantize(stacked, hessians[group[0]].hessian, bits, group_size)
        q = q.to(scale_dtype=torch.float16) if bits == 4 else q
        for name, part in zip(group, _split_columns(q, [linears[n].out_features for n in group])):
            replace_linear(layer, name, part)


def _awq_layer(layer, inputs: calib.LayerInputs, bits: int, group_size: int) -> None:
    """Record each linear's inputs, search and fold the scales, then RTN-quantize."""
    linears = calib.layer_linears(layer)
    recorded: dict[str, list[torch.Tensor]] = {name: [] for name in linears}
    with torch.no_grad(), calib.record_inputs(linears, lambda n, x: recorded[n].append(x)):
        calib.run_layer(layer, inputs)
    awq.awq_scale_layer(layer, {n: torch.cat(xs) for n, xs in recorded.items()}, bits, group_size)
    _rtn_layer(layer, bits, group_size)


def _rtn_layer(layer, bits: int, group_size: int) -> None:
    for name, linear in calib.layer_linears(layer).items():
        replace_linear(layer, name, quantize_weight(linear.weight.detach(), bits, group_size))


@torch.no_grad()
def quantize_model_(
    model,
    method: str,
    bits: int,
    group_size: int = 128,
    tokenizer=None,
    calib_samples: int = 32,
    calib_seq_len: int = 512,
    batch_size: int = 4,
) -> None:
    """Replace every decoder-layer linear of an HF causal LM by a QuantizedLinear, in place.

    AWQ and GPTQ go layer by layer on calibration activations; each layer's output (after it is
    quantized, for GPTQ) feeds the next, as in the papers' sequential procedures.
    """
    if method not in METHODS or bits not in (4, 8):
        raise ValueError(f"method must be one of {METHODS} and bits 4 or 8")
    layers = calib.decoder_layers(model)
    if method == "rtn":
        for layer in layers:
            _rtn_layer(layer, bits, group_size)
        return
    ids = calib.calibration_windows(tokenizer, calib_samples, calib_seq_len)
    inputs = calib.first_layer_inputs(model, ids, batch_size)
    step = _gptq_layer if method == "gptq" else _awq_layer
    for layer in layers:
        step(layer, inputs, bits, group_size)
        inputs = calib.LayerInputs(calib.run_layer(layer, inputs), inputs.kwargs)


def quantize_checkpoint(
    model: str,
    out_dir: Path,
    method: str = "gptq",
    bits: int = 4,
    group_size: int = 128,
    calib_samples: int = 32,
    calib_seq_len: int = 512,
) -> Path:
    """Quantize a registry model (or HF folder) on CPU and write it to out_dir."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vireo.inference.registry import ModelRegistry

    started = time.monotonic()
    source = ModelRegistry().resolve(model).path
    tokenizer = AutoTokenizer.from_pretrained(source)
    hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    quantize_model_(hf_model, method, bits, group_size, tokenizer, calib_samples, calib_seq_len)
    info = quantization_info(method, bits, group_size)
    info.update(
        source_model=model,
        quantize_seconds=round(time.monotonic() - started, 1),
        calibration=None
        if method == "rtn"
        else f"{calib_samples} x {calib_seq_len} tokens of Python docs (first 80 %)",
    )
    return save_quantized(hf_model, out_dir, source, info)


def checkpoint_dir(model: str, method: str, bits: int, group_size: int = 128, home: Path | None = None) -> Path:
    """The folder `vireo quantize` writes by default; the evals read and write the same one."""
    from vireo.inference.registry import default_home

    name = f"{model.rstrip('/').split('/')[-1]}-{method}-w{bits}g{group_size}"
    return (home or default_home()) / "models" / name


def ensure_checkpoint(model: str, method: str, bits: int, group_size: int = 128, home: Path | None = None) -> Path:
    """`model`'s checkpoint quantized as asked: made now (default calibration) unless it exists."""
    folder = checkpoint_dir(model, method, bits, group_size, home)
    if not _current(folder):
        quantize_checkpoint(model, folder, method, bits, group_size)
    return folder


def _current(folder: Path) -> bool:
    """A complete checkpoint in this Vireo's format (older formats are made again)."""
    if not (folder / WEIGHTS_FILE).exists() or not is_quantized_folder(folder):
        return False
    try:
        read_info(folder)
    except ValueError:
        return False
    return True


def weights_origin(model: str) -> dict | None:
    """Where a packaged model's weights come from: its packages and the GGUF file's pinned sha256."""
    from vireo.inference.registry import PACKAGED

    packaged = PACKAGED.get(model)
    if packaged is None:
        return None
    return {
        "packages": list(packaged.packages),
        "gguf_sha256": packaged.sha256,
        "converted_dtype": packaged.dtype,
        "note": "the GGUF file (sha256 checked), de-quantized to float once at conversion: the "
        "'unquantized' model already carries that GGUF's own quantization error",
    }


def main(argv: list[str] | None = None) -> None:
    """`vireo quantize MODEL --out DIR [--method gptq] [--bits 4] [--group-size 128]`."""
    parser = argparse.ArgumentParser(prog="vireo quantize", description=__doc__)
    parser.add_argument("model", help="registry name or HF folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--method", choices=METHODS, default="gptq")
    parser.add_argument("--bits", type=int, choices=(4, 8), default=4)
    parser.add_argument("--group-size", type=int, choices=(32, 64, 128), default=128)
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--calib-seq-len", type=int, default=512)
    args = parser.parse_args(argv)
    out = quantize_checkpoint(
        args.model, args.out, args.method, args.bits, args.group_size, args.calib_samples, args.calib_seq_len
    )
    print(f"wrote {out / WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
