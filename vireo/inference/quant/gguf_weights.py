"""A GGUF file's weights as the native engine's CPU quantized forms, without de-quantizing them.

`GgufWeights` is a read-only mapping from HF tensor names (`model.layers.0.self_attn.q_proj.weight`)
to what the engine builds its layers from; each tensor is read from the file (not mapped: the bytes the
engine keeps are its own copy, converted, and the file's pages are not kept) and converted only when the
model asks for it, one layer at a time. The one exception is a token embedding that only lookups read
(the model has an output layer of its own): it is mapped from the file in its own blocks, so only the
pages of rows the prompts use are ever read and count in the process's memory (llama.cpp maps the whole
file; its embedding costs it the same).

- Where our AVX2 kernel `cpu_gguf_dot` builds, every Q8_0, Q4_K and Q6_K matrix (layers, the LM head,
  the token embedding) -> `CpuGgufWeight`: the file's own rows of blocks, the bytes llama.cpp reads,
  nothing re-rounded (fused q/k/v and gate/up concatenate rows of one type); Q5_0 and Q4_1 too where the
  kernel runs on AVX-512 VNNI or their rows come in sixteens (interleaved), else Q5_0 -> Q8_0 blocks, exactly
  (`blocks_served` says why, by measurement). Otherwise, and for Q4_0:
- Q4_0, Q4_1, Q4_K linears -> `Int4Grid`, group 32 (packed by the model after fusing q/k/v and
  gate/up): exact; the kernel's bfloat16 scales and zeros then round by at most 2^-8 relative.
- Q8_0, Q6_K and the other block types -> `CpuInt8Weight`, int8 per output channel (RTN): at most
  half a step, max|w| of the row / 254 (as many bits as Q8_0, a coarser scale than its per-32 one).
- F32, F16, BF16 -> a float tensor in the model's dtype: exact.

A Q4 block is an int4 value times a per-32 scale plus a per-32 offset: Q4_0 w = d·(q − 8), Q4_1
w = d·q + m, Q4_K (super-blocks of 256 = 8 sub-blocks of 32, 6-bit sub-scales and sub-minima)
w = d·sc·q − dmin·m; so it maps onto the int4 kernel's (q − 8)·s + z exactly up to the rounding of
s and z. The token embedding (tied to the output layer in the small Llama/Qwen models) and an
untied `output.weight` become int8 per channel whatever their block type (the engine looks rows
up from it and runs the LM head on it), or stay float if the file stores them float.

llama.cpp's converter permutes the rows of Llama's q/k projections for its RoPE layout;
transformers' GGUF loader reverses it, and so do we, on whole quantized rows (blocks run along K,
so a row permutation moves blocks, exactly). Qwen2 files are not permuted.
"""

from __future__ import annotations

import json
import math
import mmap
import re
import struct
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vireo.kernels import cpu_gguf_dot
from vireo.kernels.cpu_quant import (
    CpuGgufWeight,
    CpuInt8Weight,
    Int4Grid,
    gguf_blocks_supported,
    int4_supported,
    int8_supported,
    quantize_int8_rows,
)


def _import_gguf_without_mistral_tokenizers() -> None:
    """Import the `gguf` package with `mistral_common` hidden. gguf's `__init__` imports its vocab module,
    which loads mistral_common's tokenizers where that is installed (the vllm extra brings it): ~50 MB in
    every engine process for classes only gguf's converters use. Hidden, the vocab module records it as
    absent; the package itself is imported normally by whoever asks for it later."""
    if "gguf" in sys.modules or "mistral_common" in sys.modules:
        return
    sys.modules["mistral_common"] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import gguf  # noqa: F401
    finally:
        del sys.modules["mistral_common"]


_import_gguf_without_mistral_tokenizers()
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: E402

MANIFEST = "vireo-model.json"  # the registry's record of the GGUF a converted folder came from
Q4_TYPES = ("Q4_0", "Q4_1", "Q4_K")
FLOAT_TYPES = ("F32", "F16", "BF16")
PERMUTED_ARCHITECTURES = ("llama",)  # whose q/k rows llama.cpp's converter permutes
_DEQUANT_ROWS = 2048  # rows de-quantized at a time when re-quantizing to int8

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK = re.compile(r"blk\.(\d+)\.(.+)")

# The block types served as blocks on our kernel (`cpu_gguf_dot`) where it builds, by measurement
# (`python -m vireo.tools.bench.gguf_kernels`, benchmarks/results/gguf-kernels-*.json): Q4_K's blocks run
# 1.1-1.2x our int4 form; Q6_K and Q8_0 blocks about as fast as int8 rows (0.9-1.2x) and exact where
# int8 rows re-round; Q5_0 becomes Q8_0 blocks (exact: q - 16 fits a byte) because its own blocks ran at
# 0.6x. Q4_0 / Q4_1 keep the int4 form (exact too, float32 scales; their blocks ran at 0.75-0.9x).
# Where the kernel's dot products run on AVX-512 VNNI (`cpu_gguf_dot.vnni`), Q5_0 keeps its own blocks too:
# streaming 20 matrices of 9728x896 from memory (Zen 4, 2 threads) they took 238 us against 295 us as Q8_0
# blocks on AVX2 at one row of x (1.24x), 1170 against 1068 us at eight (0.91x), in 35 % fewer bytes. So does
# Q4_1: SmolLM2's 120 linears, each called in turn as a decode step calls them (Zen 4, 2 threads), took 4.43 ms
# a pass as Q4_1 blocks against 5.37 ms in the int4 form at one row of x (1.21x), 10.2 against 12.3 ms at four,
# 19.3 against 21.5 at eight, in 66 MB instead of 79 (the int4 form keeps float32 scales and offsets per 32).
# Since then every served type is held with sixteen rows interleaved where the rows come in sixteens
# (`cpu_gguf_dot.INTERLEAVED`, made at load by `CpuGgufWeight.from_file`): 1.0-4.2x the layouts before it at
# one to eight rows of x on Zen 4 (the LM heads, streamed from memory at one row, about even;
# `gguf-kernels-epyc-zen4-interleaved.json`), and faster than de-quantized slices at prefill sizes, so those
# take the kernel too. And on AVX2 alone (Zen 3, 2 threads, `python -m vireo.tools.bench.gguf_kernels
# --whole-model`, gguf-kernels-epyc-zen3-whole-model.json), interleaved Q4_1 and Q5_0 blocks pay as well:
# SmolLM2's 210 Q4_1 matrices in turn took 4.49 / 6.60 / 9.93 ms a pass at 1 / 4 / 8 rows of x against 5.38 /
# 14.7 / 21.4 in the int4 form (1.20-2.22x), the 0.5B's 132 Q5_0 ones 8.69 / 14.4 / 26.0 against 11.1 / 15.3 /
# 27.9 as Q8_0 blocks (1.07-1.27x). So Q5_0 and Q4_1 keep their own blocks wherever they are interleaved (rows in
# sixteens) or VNNI runs them; only rows of other counts on AVX2 take the forms before.
BLOCKS_SERVED = ("Q8_0", "Q4_K", "Q6_K")
BLOCKS_SERVED_INTERLEAVED_OR_ON_VNNI = ("Q5_0", "Q4_1")


def blocks_served(rows: int) -> tuple[str, ...]:
    """The block types a matrix of `rows` output rows is served in as its own blocks on this CPU (see
    `BLOCKS_SERVED`)."""
    own = cpu_gguf_dot.vnni() or cpu_gguf_dot.interleaves(rows)
    return BLOCKS_SERVED + (BLOCKS_SERVED_INTERLEAVED_OR_ON_VNNI if own else ())


_Q5_0 = np.dtype([("d", "<f2"), ("qh", "<u4"), ("qs", "u1", 16)])

GgufTensor = torch.Tensor | Int4Grid | CpuInt8Weight | CpuGgufWeight


def hf_name(gguf_name: str) -> str | None:
    """The HF name of a GGUF tensor of a Llama / Qwen2 model (None: one the model does not use)."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _BLOCK.fullmatch(gguf_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    return None


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor's blocks lie in a GGUF file."""

    name: str
    type: GGMLQuantizationType
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length K
    offset: int  # absolute, in bytes
    n_bytes: int

    @property
    def rows(self) -> int:
        return math.prod(self.shape[1:])


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUFValueType -> bytes
_STRING, _ARRAY, _UINT32 = 8, 9, 4


def read_header(path: Path) -> tuple[dict[str, object], list[TensorInfo]]:
    """A GGUF file's scalar and string metadata and its tensors' places, read from the header alone
    (gguf's `GGUFReader` decodes every metadata array, the tokenizer's 100k strings included, into
    numpy objects: seconds and hundreds of MB for what the model needs none of)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buf, 4)
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} is not supported")
        pos = 24

        def string(at: int) -> tuple[str, int]:
            (length,) = struct.unpack_from("<Q", buf, at)
            return bytes(buf[at + 8 : at + 8 + length]).decode("utf-8", "replace"), at + 8 + length

        def skip(kind: int, at: int) -> tuple[object, int]:
            if kind == _STRING:
                return string(at)
            if kind == _ARRAY:
                item, count = struct.unpack_from("<IQ", buf, at)
                at += 12
                if item in _SCALAR_SIZES:
                    return None, at + count * _SCALAR_SIZES[item]
                for _ in range(count):
                    _, at = skip(item, at)
                return None, at
            size = _SCALAR_SIZES[kind]
            fmt = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[size]
            if kind == 6:
                fmt = "<f"
            elif kind == 12:
                fmt = "<d"
            return struct.unpack_from(fmt, buf, at)[0], at + size

        metadata: dict[str, object] = {}
        for _ in range(n_kv):
            key, pos = string(pos)
            (kind,) = struct.unpack_from("<I", buf, pos)
            metadata[key], pos = skip(kind, pos + 4)
        places = []
        for _ in range(n_tensors):
            name, pos = string(pos)
            (n_dims,) = struct.unpack_from("<I", buf, pos)
            shape = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
            kind, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
            pos += 4 + 8 * n_dims + 12
            places.append((name, GGMLQuantizationType(kind), tuple(shape), offset))
        alignment = int(metadata.get("general.alignment", 32))  # type: ignore[call-overload]
        start = -(-pos // alignment) * alignment
    tensors = []
    for name, kind, shape, offset in places:
        block, type_size = GGML_QUANT_SIZES[kind]
        tensors.append(TensorInfo(name, kind, shape, start + offset, math.prod(shape) // block * type_size))
    return metadata, tensors


def gguf_source(folder: Path) -> Path | None:
    """The GGUF file the registry converted `folder` from (its manifest), if it still exists."""
    manifest = Path(folder) / MANIFEST
    if not manifest.exists():
        return None
    path = json.loads(manifest.read_text()).get("gguf")
    return Path(path) if path and Path(path).is_file() else None


_Q4_BLOCKS = {  # one block of 32 (Q4_K: a super-block of 256) as a numpy record
    "Q4_0": np.dtype([("d", "<f2"), ("qs", "u1", 16)]),
    "Q4_1": np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)]),
    "Q4_K": np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", 128)]),
}
_Q8_0 = np.dtype([("d", "<f2"), ("qs", "i1", 32)])


def q4_grid(raw: np.ndarray, type_name: str) -> Int4Grid:
    """Q4_0 / Q4_1 / Q4_K rows (uint8 [N, bytes per row]) as int4 values with per-32 scale and
    offset, exactly: w = q · scale + minimum."""
    from gguf.quants import Q4_K

    n = raw.shape[0]
    blocks = np.ascontiguousarray(raw).view(_Q4_BLOCKS[type_name])  # [N, blocks per row]
    d = blocks["d"].astype(np.float32)
    if type_name == "Q4_K":
        sc, m = Q4_K.get_scale_min(blocks["scales"].reshape(-1, 12))
        scale = d[..., None] * sc.reshape(n, -1, 8).astype(np.float32)
        minimum = -blocks["dmin"].astype(np.float32)[..., None] * m.reshape(n, -1, 8).astype(np.float32)
        qs = blocks["qs"].reshape(n, -1, 4, 1, 32)  # sub-blocks 2j, 2j+1: low, high nibbles of 32 bytes
        q = np.concatenate([qs & 0xF, qs >> 4], axis=3)
    else:
        scale = d
        minimum = -8 * d if type_name == "Q4_0" else blocks["m"].astype(np.float32)
        qs = blocks["qs"]  # [N, nb, 16]: values 0..15 low nibbles, 16..31 high nibbles
        q = np.concatenate([qs & 0xF, qs >> 4], axis=-1)
    return Int4Grid(
        torch.from_numpy(q.reshape(n, -1)),
        torch.from_numpy(np.ascontiguousarray(scale.reshape(n, -1))),
        torch.from_numpy(np.ascontiguousarray(minimum.reshape(n, -1))),
        32,
    )


def q5_0_as_q8_0(raw: np.ndarray) -> np.ndarray:
    """Q5_0 rows (w = d * (q - 16), q of five bits) as Q8_0 rows (w = d * int8): the same weights exactly,
    converted `_DEQUANT_ROWS` rows at a time (a 151936-row embedding's whole intermediates are GBs)."""
    blocks = np.ascontiguousarray(raw).view(_Q5_0)  # [N, blocks per row]
    out = np.empty(blocks.shape, dtype=_Q8_0)
    out["d"] = blocks["d"]
    bit = np.arange(32, dtype=np.uint32)
    for start in range(0, blocks.shape[0], _DEQUANT_ROWS):
        part = blocks[start : start + _DEQUANT_ROWS]
        low = np.concatenate([part["qs"] & 0xF, part["qs"] >> 4], axis=-1).astype(np.int8)  # values j, j + 16
        fifth = (((part["qh"][..., None] >> bit) & 1) << 4).astype(np.int8)
        out["qs"][start : start + _DEQUANT_ROWS] = (low | fifth) - 16
    return out.view(np.uint8).reshape(raw.shape[0], -1)


def dequantize_rows(raw: np.ndarray, tensor_type: GGMLQuantizationType) -> torch.Tensor:
    """Rows of any GGUF type as float32 [N, K] (gguf's own de-quantization; Q8_0 directly)."""
    if tensor_type == GGMLQuantizationType.Q8_0:
        blocks = np.ascontiguousarray(raw).view(_Q8_0)
        values = blocks["d"].astype(np.float32)[..., None] * blocks["qs"].astype(np.float32)
        return torch.from_numpy(values.reshape(raw.shape[0], -1))
    from gguf.quants import dequantize

    return torch.from_numpy(np.array(dequantize(raw, tensor_type), dtype=np.float32))


def int8_rows(raw: np.ndarray, tensor_type: GGMLQuantizationType) -> CpuInt8Weight:
    """Rows of a block type re-quantized to int8 per output channel, a slice of rows at a time."""
    parts = [
        quantize_int8_rows(dequantize_rows(raw[start : start + _DEQUANT_ROWS], tensor_type))
        for start in range(0, raw.shape[0], _DEQUANT_ROWS)
    ]
    return CpuInt8Weight.cat(parts)


def rope_row_order(rows: int, heads: int) -> np.ndarray:
    """HF row i of a q/k projection is GGUF row order[i] (transformers' `_reverse_permute_weights`)."""
    dim = rows // heads // 2
    return np.arange(rows).reshape(heads, dim, 2).swapaxes(1, 2).reshape(rows)


class GgufWeights(Mapping):
    """HF-named weights of a GGUF file, converted on access (see the module's table)."""

    def __init__(self, path: Path, hf_config, dtype: torch.dtype):
        self.path, self.dtype = Path(path), dtype
        metadata, tensors = read_header(self.path)
        self.permuted = metadata.get("general.architecture") in PERMUTED_ARCHITECTURES
        self.heads = hf_config.num_attention_heads
        self.kv_heads = getattr(hf_config, "num_key_value_heads", None) or self.heads
        self.tensors = {name: t for t in tensors if (name := hf_name(t.name)) is not None}

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def type_of(self, name: str) -> str:
        """The GGUF block type of a tensor (`Q4_K`, `Q6_K`, `F32`, ...)."""
        return self.tensors[name].type.name

    def only_looked_up(self, name: str) -> bool:
        """The token embedding of a model with an output layer of its own: only its rows are ever read (so
        it keeps its own blocks, mapped: a Q5_0 one 0.69x the bytes of the Q8_0 ones the matmuls prefer)."""
        return name == "model.embed_tokens.weight" and "lm_head.weight" in self.tensors

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as rows [N, bytes per row] in HF row order (read, not mapped)."""
        t = self.tensors[name]
        buffer = bytearray(t.n_bytes)
        with open(self.path, "rb") as f:
            f.seek(t.offset)
            if f.readinto(buffer) != t.n_bytes:
                raise ValueError(f"{self.path} ends inside tensor {t.name}")
        data = np.frombuffer(buffer, dtype=np.uint8).reshape(t.rows, -1)  # writable: it owns the buffer
        if self.permuted and name.endswith(("q_proj.weight", "k_proj.weight")):
            data = data[rope_row_order(t.rows, self.heads if "q_proj" in name else self.kv_heads)]
        return data

    def mapped(self, name: str) -> np.ndarray:
        """The tensor's bytes as rows [N, bytes per row], mapped copy-on-write from the file: a page is
        read (and counts in the process's memory) only when a row on it is, so an embedding that only
        lookups read costs the rows the prompts use, as in llama.cpp's mapped file."""
        t = self.tensors[name]
        return np.memmap(self.path, dtype=np.uint8, mode="c", offset=t.offset, shape=(t.rows, t.n_bytes // t.rows))

    def __getitem__(self, name: str) -> GgufTensor:
        t = self.tensors[name]
        if self.only_looked_up(name) and t.type.name not in FLOAT_TYPES:
            k = t.shape[0]
            if gguf_blocks_supported(t.type.name, k):
                return CpuGgufWeight(torch.from_numpy(self.mapped(name)), t.type.name, k)  # rows: no matmul
        raw = self.raw(name)
        if t.type.name in FLOAT_TYPES or len(t.shape) == 1:
            dense = dequantize_rows(raw, t.type)
            return (dense.view(-1) if len(t.shape) == 1 else dense).to(self.dtype)
        n, k = t.rows, t.shape[0]
        if t.type.name in blocks_served(n) and gguf_blocks_supported(t.type.name, k):
            # raw's buffer is this call's own: regrouped in place where the layouts are the same size
            return CpuGgufWeight.from_file(torch.from_numpy(np.ascontiguousarray(raw)), t.type.name, k, in_place=True)
        if t.type.name == "Q5_0" and gguf_blocks_supported("Q8_0", k):
            return CpuGgufWeight.from_file(torch.from_numpy(q5_0_as_q8_0(raw)), "Q8_0", k, in_place=True)
        if t.type.name in Q4_TYPES and ".layers." in name and int4_supported(n, k, 32):
            return q4_grid(raw, t.type.name)
        if int8_supported(n, k):
            return int8_rows(raw, t.type)
        return dequantize_rows(raw, t.type).to(self.dtype)
