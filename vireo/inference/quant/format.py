"""The quantized checkpoint folder `vireo quantize` writes and both the native engine and vLLM read.

    config.json                    the source model's, plus vLLM's `quantization_config`
    quantize_config.json           the same `quantization_config` (AutoGPTQ / AutoAWQ's file)
    quantization.json              how it was made: {"format": "vireo-wq", "format_version": 2, ...}
    vireo-quantized.safetensors    the tensors, in vLLM's AWQ (int4) / GPTQ (int8) layout
    tokenizer files, chat template

Only `model.layers.*.{self_attn,mlp}.*_proj` are quantized; embeddings, norms and an untied
`lm_head` keep the source dtype; a tied `lm_head.weight` is not stored.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from vireo.inference.quant import vllm_layout
from vireo.kernels.qweight import Int4Weight, Int8Weight

FORMAT = "vireo-wq"
FORMAT_VERSION = 2  # 1: the kernels' own layout (before vLLM's); re-run `vireo quantize`
WEIGHTS_FILE = "vireo-quantized.safetensors"
INFO_FILE = "quantization.json"
QUANTIZE_CONFIG_FILE = "quantize_config.json"
QUANTIZED_TENSORS = ("qweight", "qzeros", "scales", "g_idx")
QuantizedWeight = Int8Weight | Int4Weight


def quantization_info(method: str, bits: int, group_size: int) -> dict:
    """The description stored beside the weights (and in the safetensors metadata)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method,
        "bits": bits,
        "group_size": group_size if bits == 4 else None,
        "layout": "awq" if bits == 4 else "gptq",
        "quantized_modules": "model.layers.*.{self_attn,mlp}.*_proj",
    }


def is_quantized_folder(folder: Path) -> bool:
    return (Path(folder) / INFO_FILE).exists()


def read_info(folder: Path) -> dict:
    """quantization.json, refusing folders written in another format or version."""
    info = json.loads((Path(folder) / INFO_FILE).read_text())
    if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{folder} holds quantized weights in format {info.get('format')} "
            f"version {info.get('format_version')}; this Vireo reads {FORMAT} version "
            f"{FORMAT_VERSION}: quantize the model again (`vireo quantize`)"
        )
    return info


# --- writing ------------------------------------------------------------------------------------
def save_checkpoint(
    linears: dict[str, tuple[QuantizedWeight, torch.Tensor | None]],
    floats: dict[str, torch.Tensor],
    out_dir: Path,
    source_dir: Path,
    info: dict,
) -> Path:
    """Write the folder: `linears` by module name (weight, bias), `floats` the other tensors."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bits, group_size = info["bits"], info["group_size"]
    state = {name: t.contiguous() for name, t in floats.items()}
    for name, (weight, bias) in linears.items():
        if bits == 4:
            assert isinstance(weight, Int4Weight)
            tensors = vllm_layout.int4_to_awq(weight)
        else:
            assert isinstance(weight, Int8Weight)
            tensors = vllm_layout.int8_to_gptq(weight)
        state.update({f"{name}.{key}": t.contiguous() for key, t in tensors.items()})
        if bias is not None:
            state[f"{name}.bias"] = bias.contiguous()
    refusal = vllm_layout.vllm_refusal(bits, group_size, [w.shape[1] for w, _ in linears.values()])
    info = {**info, "vllm": refusal or "loads as quantization " + ("awq" if bits == 4 else "gptq")}
    save_file(state, out_dir / WEIGHTS_FILE, metadata={"vireo_quantization": json.dumps(info)})
    for f in Path(source_dir).iterdir():
        if (
            f.is_file()
            and not f.name.endswith((".safetensors", ".bin", ".gguf"))
            and not f.name.startswith("model.safetensors")
            and f.name != INFO_FILE
        ):
            shutil.copy2(f, out_dir / f.name)
    quant_config = vllm_layout.vllm_quantization_config(bits, group_size)
    config = json.loads((out_dir / "config.json").read_text())
    config["quantization_config"] = quant_config
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    (out_dir / QUANTIZE_CONFIG_FILE).write_text(json.dumps(quant_config, indent=2))
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2))
    return out_dir


# --- reading ------------------------------------------------------------------------------------
def load_quantized_weights(
    folder: Path, dtype: torch.dtype, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor | QuantizedWeight]:
    """Float tensors cast to `dtype`; every quantized linear as one weight object under its
    `.weight` name, so models build float and quantized checkpoints the same way."""
    from safetensors.torch import load_file

    folder = Path(folder)
    info = read_info(folder)
    state = load_file(folder / WEIGHTS_FILE, device=str(device))
    weights: dict = {}
    for name in [n for n in state if n.endswith(".qweight")]:
        prefix = name[: -len("qweight")]
        tensors = {key: state[prefix + key] for key in QUANTIZED_TENSORS if prefix + key in state}
        weights[prefix + "weight"] = (
            vllm_layout.int4_from_awq(tensors, info["group_size"])
            if info["bits"] == 4
            else vllm_layout.int8_from_gptq(tensors)
        )
    for name, tensor in state.items():
        if not name.endswith(tuple("." + key for key in QUANTIZED_TENSORS)):
            weights[name] = tensor.to(dtype)
    return weights
