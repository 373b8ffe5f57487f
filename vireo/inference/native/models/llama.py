"""Llama-family decoder (Llama, SmolLM2, Qwen2 / Qwen2.5-Coder) over a flat batch of tokens.

Weights come straight from the HF safetensors folder (or a Vireo int8/int4 folder, whose linears
become `QuantizedLinear`s). q/k/v are fused into one projection (and gate/up into another) at load
time so a layer runs few, larger matmuls; Qwen2 adds q/k/v biases and small Qwen2 models tie the
output layer to the embeddings. On CUDA tensors the layers run the Triton kernels (RoPE in place
on the fused qkv output, fused norms, paged attention kernels); on CPU the torch code.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

from vireo.inference.model_config import read_model_config
from vireo.inference.native.heap import release_free_heap
from vireo.inference.native.models.attention import AttentionMetadata, paged_attention
from vireo.inference.native.models.layers import (
    ConcatLinear,
    Linear,
    add_rms_norm,
    apply_rotary,
    rms_norm,
    rotary_cos_sin,
    rotary_tables,
    rotate_in_place,
    rotate_tables_in_place,
    silu_and_mul,
)
from vireo.inference.native.parallel.group import TensorParallel
from vireo.inference.native.parallel.sharding import Shard, shard_weights
from vireo.inference.quant.format import is_quantized_folder, load_quantized_weights
from vireo.inference.quant.gguf_weights import GgufWeights, gguf_source
from vireo.inference.quant.linear import QuantizedLinear, QuantizedWeight, concat_out_features
from vireo.inference.quant.rtn import quantize_linears
from vireo.inference.random_models import is_random_folder, random_weights
from vireo.kernels import cpu_decode_ops
from vireo.kernels.cpu_quant import CpuGgufWeight, CpuInt8Weight, Int4Grid, for_cpu_kernels, pack_int4
from vireo.kernels.dispatch import interpreting, use_triton

SUPPORTED = ("LlamaForCausalLM", "Qwen2ForCausalLM")


def load_safetensors(folder: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every tensor of the folder's safetensors files, cast to `dtype`."""
    tensors = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name).to(dtype)
    if not tensors:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    return tensors


def inverse_frequencies(hf_config, head_dim: int) -> tuple[torch.Tensor, float]:
    """RoPE inverse frequencies and attention scaling, as transformers computes them."""
    params = getattr(hf_config, "rope_parameters", None) or {}
    rope_type = params.get("rope_type", "default")
    if rope_type != "default":
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        return ROPE_INIT_FUNCTIONS[rope_type](hf_config, torch.device("cpu"))
    theta = params.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    return 1.0 / (theta**exponents), 1.0


def fused_linear(parts: list, bias: torch.Tensor | None, batch_hint: int, dense_gemv: bool = True):
    """One linear whose output features are those of `parts` (float tensors or quantized); parts of
    different formats (a GGUF Q4_K_M layer's Q6_K v_proj beside Q4_K q/k) run as one linear per
    run of a format, outputs concatenated."""
    runs = [list(run) for _, run in itertools.groupby(parts, key=lambda p: (type(p), getattr(p, "block_type", None)))]
    if len(runs) == 1:
        return _linear_of(parts, bias, batch_hint, dense_gemv)
    linears, start = [], 0
    for run in runs:
        width = sum(p.shape[0] for p in run)
        run_bias = None if bias is None else bias[start : start + width]
        linears.append(_linear_of(run, run_bias, batch_hint, dense_gemv))
        start += width
    return ConcatLinear(linears)


def _linear_of(parts: list, bias: torch.Tensor | None, batch_hint: int, dense_gemv: bool):
    """The linear of same-format parts: float -> `Linear`; quantized -> `QuantizedLinear`, on CPU
    holding only the CPU kernels' packed form where they take the shape."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return Linear(torch.cat(parts) if len(parts) > 1 else first, bias, batch_hint, dense_gemv=dense_gemv)
    if isinstance(first, Int4Grid):  # a GGUF Q4 weight: fused, then packed once
        return QuantizedLinear(pack_int4(Int4Grid.cat(parts)), bias)
    if isinstance(first, CpuInt8Weight):
        return QuantizedLinear(CpuInt8Weight.cat(parts), bias)
    if isinstance(first, CpuGgufWeight):  # a GGUF file's own blocks
        return QuantizedLinear(CpuGgufWeight.cat(parts), bias)
    fused = concat_out_features(parts)
    # the portable weight stays where Triton can run it: CUDA, or CPU tensors under the interpreter (tests)
    cpu = None if fused.qweight.is_cuda or interpreting() else for_cpu_kernels(fused)
    return QuantizedLinear(cpu or fused, bias)


@dataclass
class RopeInputs:
    """This step's rotary inputs: cos/sin rows (torch path), or positions + the whole tables (our CPU
    kernel: `tables`; the Triton kernel: `cos_sin`)."""

    positions: torch.Tensor
    cos: torch.Tensor | None = None  # [tokens, 1, head_dim/2]
    sin: torch.Tensor | None = None
    cos_sin: torch.Tensor | None = None  # float32 [max_positions, head_dim]
    tables: tuple[torch.Tensor, torch.Tensor] | None = None  # cos, sin [max_positions, head_dim/2]

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        if self.cos_sin is not None:
            return rotate_in_place(x, self.positions, self.cos_sin)
        if self.tables is not None:
            rotated = rotate_tables_in_place(x, self.positions, *self.tables)
            if rotated is not None:
                return rotated
            self.cos, self.sin = (table[self.positions].unsqueeze(1) for table in self.tables)
        assert self.cos is not None and self.sin is not None  # the torch path's inputs
        return apply_rotary(x, self.cos, self.sin)


class DecoderLayer:
    """Pre-norm attention + SwiGLU MLP; the residual stream is carried between layers."""

    def __init__(
        self, w: Mapping, prefix: str, cfg, batch_hint: int, dense_gemv: bool = True, tp: TensorParallel | None = None
    ):
        a, m = prefix + "self_attn.", prefix + "mlp."
        self.tp = tp  # set: o and down hold this rank's input features, their outputs summed over the ranks
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, cfg.head_dim
        self.eps = cfg.eps
        bias = None
        if a + "q_proj.bias" in w:
            bias = torch.cat([w[a + n + "_proj.bias"] for n in "qkv"])
        self.qkv = fused_linear([w[a + n + "_proj.weight"] for n in "qkv"], bias, batch_hint, dense_gemv)
        self.o = fused_linear([w[a + "o_proj.weight"]], None, batch_hint, dense_gemv)
        self.gate_up = fused_linear([w[m + "gate_proj.weight"], w[m + "up_proj.weight"]], None, batch_hint, dense_gemv)
        self.down = fused_linear([w[m + "down_proj.weight"]], None, batch_hint, dense_gemv)
        self.input_norm = w[prefix + "input_layernorm.weight"]
        self.post_norm = w[prefix + "post_attention_layernorm.weight"]

    def __call__(self, h, residual, rope: RopeInputs, meta: AttentionMetadata, kv):
        qkv, residual = self.before_attention(h, residual, rope)
        q, k, v = self.split_heads(qkv)
        return self.after_attention(paged_attention(q, k, v, kv[0], kv[1], meta), residual)

    def before_attention(self, h, residual, rope: RopeInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Norm, the fused q/k/v projection and RoPE: qkv [tokens, (heads + 2 kv_heads) * head_dim], q and k
        rotated in place, and the residual stream."""
        x, residual = add_rms_norm(h, residual, self.input_norm, self.eps)
        qkv = self.qkv(x)
        qk_heads = self.heads + self.kv_heads
        qk = qkv[:, : qk_heads * self.head_dim].view(qkv.shape[0], qk_heads, self.head_dim)
        rotated = rope.rotate(qk)
        if rotated is not qk:  # (the torch path rotates into a new tensor; the kernels rotate in place)
            qk.copy_(rotated)
        return qkv, residual

    def split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q [tokens, heads, dim], k and v [tokens, kv_heads, dim]: views into `qkv`."""
        tokens, dim = qkv.shape[0], self.head_dim
        q = qkv[:, : self.heads * dim].view(tokens, self.heads, dim)
        k = qkv[:, self.heads * dim : (self.heads + self.kv_heads) * dim].view(tokens, self.kv_heads, dim)
        v = qkv[:, (self.heads + self.kv_heads) * dim :].view(tokens, self.kv_heads, dim)
        return q, k, v

    def after_attention(self, attn: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output projection, norm and SwiGLU MLP: this layer's output and the residual stream."""
        x, residual = add_rms_norm(self._summed(self.o(attn)), residual, self.post_norm, self.eps)
        return self._summed(self.down(silu_and_mul(self.gate_up(x)))), residual

    def _summed(self, partial: torch.Tensor) -> torch.Tensor:
        return partial if self.tp is None else self.tp.all_reduce(partial)


class ModelShape:
    """The few numbers of a HF config the model needs; heads are those of one tensor-parallel rank."""

    def __init__(self, hf_config, tp_size: int = 1):
        self.hidden = hf_config.hidden_size
        heads = hf_config.num_attention_heads
        self.head_dim = getattr(hf_config, "head_dim", None) or self.hidden // heads
        self.heads = heads // tp_size
        self.kv_heads = (getattr(hf_config, "num_key_value_heads", None) or heads) // tp_size
        self.layers = hf_config.num_hidden_layers
        self.vocab = hf_config.vocab_size
        self.eps = hf_config.rms_norm_eps
        self.max_positions = hf_config.max_position_embeddings


class LlamaModel:
    """The whole decoder: token ids + positions + attention metadata -> hidden states."""

    def __init__(
        self,
        hf_config,
        weights: Mapping,
        dtype: torch.dtype,
        batch_hint: int = 32,
        device: str | torch.device = "cpu",
        dense_gemv: bool = True,
        tp: TensorParallel | None = None,
    ):
        arch = (getattr(hf_config, "architectures", None) or ["LlamaForCausalLM"])[0]
        if arch not in SUPPORTED:
            raise ValueError(f"native engine supports {', '.join(SUPPORTED)}, not {arch}")
        self.tp = tp  # set: `weights` are this rank's shard (`parallel.sharding`)
        self.shape = cfg = ModelShape(hf_config, tp.size if tp else 1)
        self.dtype, self.device = dtype, torch.device(device)
        if self.device.type != "cpu":  # on CPU, a lazy mapping (GGUF) stays lazy: one layer decoded at a time
            weights = {name: w.to(self.device) for name, w in weights.items()}
        # a float matrix, or (GGUF) quantized rows the lookup de-quantizes and the tied LM head multiplies
        self.embed: torch.Tensor | CpuInt8Weight | CpuGgufWeight = weights["model.embed_tokens.weight"]
        self.layers = []
        for i in range(cfg.layers):
            self.layers.append(DecoderLayer(weights, f"model.layers.{i}.", cfg, batch_hint, dense_gemv, tp))
            if self.device.type == "cpu":  # the layer's read buffers, freed: glibc's heap would hold them to the end
                release_free_heap()
        self.norm = weights["model.norm.weight"]
        head = weights.get("lm_head.weight", self.embed)
        self.lm_head = (
            QuantizedLinear(head, None)
            if isinstance(head, (CpuInt8Weight, CpuGgufWeight))
            else Linear(head, None, batch_hint, dense_gemv=dense_gemv)
        )
        inv_freq, scaling = inverse_frequencies(hf_config, cfg.head_dim)
        self.cos, self.sin = (t.to(self.device) for t in rotary_tables(inv_freq, cfg.max_positions, scaling, dtype))
        self._rope_params = (inv_freq, scaling)
        self._cos_sin: torch.Tensor | None = None

    @property
    def cos_sin(self) -> torch.Tensor:
        """The float32 RoPE table of the kernel path, made on first use."""
        if self._cos_sin is None:
            inv_freq, scaling = self._rope_params
            self._cos_sin = rotary_cos_sin(inv_freq, self.shape.max_positions, scaling).to(self.device)
        return self._cos_sin

    @classmethod
    def from_pretrained(
        cls,
        folder: Path,
        dtype: torch.dtype = torch.float32,
        batch_hint: int = 32,
        device: str | torch.device = "cpu",
        quantization: str = "none",
        dense_gemv: bool = True,
        tp: TensorParallel | None = None,
    ) -> "LlamaModel":
        """A HF folder's model; a `vireo quantize` folder as it was quantized, a plain one with its
        linears rounded to nearest at load when `quantization` is int8 or int4, and one the
        registry converted from a GGUF file straight from that file's blocks when it is `gguf`
        (CPU only: `quant.gguf_weights`). With `tp`, each weight is this rank's shard."""
        hf_config = read_model_config(folder)
        shard = None if tp is None else Shard(hf_config, tp.rank, tp.size)
        weights: Mapping[str, torch.Tensor | QuantizedWeight] | GgufWeights
        if quantization == "gguf" and shard is not None:
            raise ValueError("quantization 'gguf' runs on one CPU process: serve it with tensor_parallel_size 1")
        if quantization == "gguf":
            source = gguf_source(folder)
            if source is None:
                raise ValueError(
                    f"quantization 'gguf' serves a model from the GGUF file it was converted from; "
                    f"{folder} names none (its vireo-model.json): use a GGUF model or another quantization"
                )
            if torch.device(device).type != "cpu":
                raise ValueError("quantization 'gguf' runs on CPU (the CPU int4/int8 kernels); on CUDA use int4/int8")
            weights = GgufWeights(source, hf_config, dtype)
        elif is_quantized_folder(folder):
            weights = load_quantized_weights(folder, dtype)
            weights = weights if shard is None else shard_weights(weights, shard)
        else:
            # a `random:<shape>` folder has no weight files: they are made on the device, seeded (and a
            # rank's shard cut from each as it is made); a plain model is cut before it is quantized
            if is_random_folder(folder):
                floats = random_weights(folder, hf_config, dtype, device, keep=shard)
                floats = floats if shard is None else shard.tie_head(floats)
            else:
                floats = load_safetensors(folder, dtype)
                floats = floats if shard is None else shard_weights(floats, shard)
            weights = (
                floats if quantization == "none" else quantize_linears(floats, bits=8 if quantization == "int8" else 4)
            )
        return cls(hf_config, weights, dtype, batch_hint, device, dense_gemv, tp)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        kv_caches: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        """Residual stream after the last layer, [tokens, hidden] (final norm not yet applied)."""
        h = self.embed_tokens(input_ids)
        rope = self.rope_inputs(positions, h)
        residual = None
        for layer, kv in zip(self.layers, kv_caches):
            h, residual = layer(h, residual, rope, meta, kv)
        assert residual is not None  # set by the first layer
        return residual.add_(h)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The residual stream's start: each id's embedding row, [tokens, hidden]."""
        if isinstance(self.embed, torch.Tensor):
            return F.embedding(input_ids, self.embed)
        return self.embed.rows(input_ids, self.dtype)

    def rope_inputs(self, positions: torch.Tensor, h: torch.Tensor) -> RopeInputs:
        """The rotary inputs for the path the layers take on `h` (Triton, our CPU kernel, torch)."""
        if use_triton(h):
            return RopeInputs(positions, cos_sin=self.cos_sin)
        if cpu_decode_ops.for_rows(h) is not None:
            return RopeInputs(positions, tables=(self.cos, self.sin))
        return RopeInputs(positions, self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Float32 logits [rows, vocab] for the chosen rows of `forward`'s output."""
        logits = self.lm_head(rms_norm(hidden, self.norm, self.shape.eps))
        if self.tp is not None:  # each rank made its rows of the vocabulary (the last one padded)
            logits = self.tp.gather_last_dim(logits)[:, : self.shape.vocab]
        return logits.float()
