"""Weight-only int8 / int4 quantization of an HF causal LM: RTN, AWQ or GPTQ, saved in Vireo's
safetensors layout (docs/quantization.md) and loaded back as `QuantLinear` modules.

    vireo quantize smollm2-135m --method gptq --bits 4 --group-size 128 --out DIR

`QuantLinear` calls `vireo.kernels.quant`: the torch reference on CPU, Triton on CUDA.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vireo.inference import awq, quant_calibration as calib
from vireo.inference.gptq import HessianAccumulator, gptq_quantize
from vireo.kernels.dispatch import use_triton
from vireo.kernels.qweight import Int4Weight, Int8Weight, dequantize, quantize_int4, quantize_int8
from vireo.kernels.quant import w4a16_matmul, w8a16_matmul

WEIGHTS_FILE = "vireo-quantized.safetensors"
FORMAT_VERSION = 1
METHODS = ("rtn", "awq", "gptq")


class QuantLinear(torch.nn.Module):
    """A linear layer with an int8 (per-channel) or int4 (grouped) weight."""

    def __init__(self, weight: Int8Weight | Int4Weight, bias: torch.Tensor | None = None):
        super().__init__()
        self.bits = 4 if isinstance(weight, Int4Weight) else 8
        self.out_features, self.in_features = weight.shape
        self.group_size = weight.group_size if self.bits == 4 else 0
        self.register_buffer("qweight", weight.qweight)
        self.register_buffer("scales", weight.scales)
        if self.bits == 4:
            self.register_buffer("zeros", weight.zeros)
        self.bias = torch.nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self._dense: torch.Tensor | None = None  # CPU only: the dequantized weight, made once

    @property
    def weight_q(self) -> Int8Weight | Int4Weight:
        if self.bits == 4:
            return Int4Weight(self.qweight, self.scales, self.zeros, self.group_size,
                              self.in_features)
        return Int8Weight(self.qweight, self.scales)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.qweight.is_cuda or use_triton(x):
            fn = w4a16_matmul if self.bits == 4 else w8a16_matmul
            out = fn(x, self.weight_q)
        else:  # CPU has no fast dequantizing kernel: dequantize once, keep the float weight
            if self._dense is None:
                self._dense = dequantize(self.weight_q)
            out = torch.nn.functional.linear(x.float(), self._dense).to(x.dtype)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bits={self.bits}, " \
               f"group_size={self.group_size}"


def quantize_weight(weight: torch.Tensor, bits: int, group_size: int) -> Int8Weight | Int4Weight:
    """RTN: int8 symmetric per output channel, or int4 asymmetric per group; fp16 int4 scales."""
    if bits == 8:
        return quantize_int8(weight)
    return quantize_int4(weight, group_size).to(scale_dtype=torch.float16)


def _replace(layer, name: str, quantized: Int8Weight | Int4Weight) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = layer.get_submodule(parent_name) if parent_name else layer
    old = getattr(parent, child)
    bias = old.bias.detach().clone() if old.bias is not None else None
    setattr(parent, child, QuantLinear(quantized, bias))


# Linears that read the same input share one Hessian: GPTQ runs once on their stacked rows.
SHARED_INPUT = (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                ("mlp.gate_proj", "mlp.up_proj"))


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
    return [Int4Weight(q.contiguous(), s.contiguous(), z.contiguous(), w.group_size, w.in_features)
            for q, s, z in zip(q_parts, s_parts, z_parts)]


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
            _replace(layer, name, part)


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
        _replace(layer, name, quantize_weight(linear.weight.detach(), bits, group_size))


@torch.no_grad()
def quantize_model_(model, method: str, bits: int, group_size: int = 128, tokenizer=None,
                    calib_samples: int = 32, calib_seq_len: int = 512, batch_size: int = 4) -> None:
    """Replace every decoder-layer linear of an HF causal LM by a QuantLinear, in place.

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


def quantization_info(method: str, bits: int, group_size: int) -> dict:
    """The description stored beside the weights (and in the safetensors metadata)."""
    return {"format": "vireo-wq", "format_version": FORMAT_VERSION, "method": method,
            "bits": bits, "group_size": group_size if bits == 4 else None,
            "int4_packing": "int32 [ceil(K/8), N], nibble j of row i = input channel 8i+j",
            "quantized_modules": "model.layers.*.{self_attn,mlp}.*_proj"}


def save_quantized(model, out_dir: Path, source_dir: Path, info: dict) -> Path:
    """Write the quantized weights, config, tokenizer files and quantization.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied to the embedding, saved once
    save_file(state, out_dir / WEIGHTS_FILE, metadata={"vireo_quantization": json.dumps(info)})
    for f in Path(source_dir).iterdir():
        if f.is_file() and not f.name.endswith((".safetensors", ".bin", ".gguf")) \
                and not f.name.startswith("model.safetensors"):
            shutil.copy2(f, out_dir / f.name)
    (out_dir / "quantization.json").write_text(json.dumps(info, indent=2))
    return out_dir


def load_quantized(path: Path, dtype: torch.dtype = torch.float32, device="cpu"):
    """An HF causal LM whose decoder linears are QuantLinear modules, from a quantized folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(path)
    info = json.loads((path / "quantization.json").read_text())
    state = load_file(path / WEIGHTS_FILE, device=str(device))
    config = AutoConfig.from_pretrained(path)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    for layer_idx, layer in enumerate(calib.decoder_layers(model)):
        for name in calib.layer_linears(layer):
            prefix = f"model.layers.{layer_idx}.{name}."
            weight = _weight_from_state(state, prefix, info, layer.get_submodule(name).in_features)
            _replace(layer, name, weight)
    model.load_state_dict(state, strict=False)
    missing = set(model.state_dict()) - set(state) - {"lm_head.weight"}
    if missing:
        raise ValueError(f"quantized checkpoint lacks {sorted(missing)[:5]}")
    model.tie_weights()
    return model.to(device).eval()


def _weight_from_state(state: dict, prefix: str, info: dict, in_features: int):
    if info["bits"] == 8:
        return Int8Weight(state[prefix + "qweight"], state[prefix + "scales"])
    return Int4Weight(state[prefix + "qweight"], state[prefix + "scales"], state[prefix + "zeros"],
                      info["group_size"], in_features)


def quantize_checkpoint(model: str, out_dir: Path, method: str = "gptq", bits: int = 4,
                        group_size: int = 128, calib_samples: int = 32,
                        calib_seq_len: int = 512) -> Path:
    """Quantize a registry model (or HF folder) on CPU and write it to out_dir."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vireo.inference.registry import ModelRegistry

    started = time.monotonic()
    source = ModelRegistry().resolve(model).path
    tokenizer = AutoTokenizer.from_pretrained(source)
    hf_model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    quantize_model_(hf_model, method, bits, group_size, tokenizer, calib_samples, calib_seq_len)
    info = quantization_info(method, bits, group_size)
    info.update(source_model=model, quantize_seconds=round(time.monotonic() - started, 1),
                calibration=None if method == "rtn" else f"{calib_samples} x {calib_seq_len} tokens "
                                                         f"of Python docs (first 80 %)")
    return save_quantized(hf_model, out_dir, source, info)


def checkpoint_dir(model: str, method: str, bits: int, group_size: int = 128,
                   home: Path | None = None) -> Path:
    """The folder `vireo quantize` writes by default; the evals read and write the same one."""
    from vireo.inference.registry import default_home

    name = f"{model.rstrip('/').split('/')[-1]}-{method}-w{bits}g{group_size}"
    return (home or default_home()) / "models" / name


def ensure_checkpoint(model: str, method: str, bits: int, group_size: int = 128,
                      home: Path | None = None) -> Path:
    """`model`'s checkpoint quantized as asked: made now (default calibration) unless it exists."""
    folder = checkpoint_dir(model, method, bits, group_size, home)
    if not (folder / WEIGHTS_FILE).exists():
        quantize_checkpoint(model, folder, method, bits, group_size)
    return folder


def weights_origin(model: str) -> dict | None:
    """Where a packaged model's weights come from: its packages and the GGUF file's pinned sha256."""
    from vireo.inference.registry import PACKAGED

    packaged = PACKAGED.get(model)
    if packaged is None:
        return None
    return {"packages": list(packaged.packages), "gguf_sha256": packaged.sha256,
            "converted_dtype": packaged.dtype,
            "note": "the GGUF file (sha256 checked), de-quantized to float once at conversion: the "
                    "'unquantized' model already carries that GGUF's own quantization error"}


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
    out = quantize_checkpoint(args.model, args.out, args.method, args.bits, args.group_size,
                              args.calib_samples, args.calib_seq_len)
    print(f"wrote {out / WEIGHTS_FILE}")


if __name__ == "__main__":
    main()
