"""The tensor layouts vLLM loads, to and from the kernels' own (`vireo.kernels.qweight`).

- int4 (asymmetric, grouped) is stored as AutoAWQ's GEMM layout: `qweight` int32 [K, N/8] and
  `qzeros` int32 [ceil(K/G), N/8] packed along the output features in AWQ's nibble order, `scales`
  float16 [ceil(K/G), N]. vLLM loads it as `quant_method: awq` (on CPU too, where its WNA16
  kernel takes uint4 with zero points); its GPTQ loader takes symmetric int4 only.
- int8 (symmetric, per output channel) is stored as AutoGPTQ's layout with 8 bits, `sym` and
  group size -1: `qweight` int32 [K/4, N] packed along the input features, unsigned q + 128;
  `qzeros` int32 [1, N/4] (128, written as 127: GPTQ's off-by-one zero point); `scales` [1, N];
  `g_idx` int32 [K] of zeros.
Both conversions are exact: a checkpoint read back gives the very weights that were written.
"""

from __future__ import annotations

import torch

from vireo.kernels.qweight import Int4Weight, Int8Weight, pack_int4, unpack_int4

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # nibble j of a word holds column AWQ_ORDER[j] of its 8
INT8_OFFSET = 128


def _pack_columns(q: torch.Tensor) -> torch.Tensor:
    """Unsigned 4-bit values [R, N] -> int32 [R, N/8], eight columns a word in AWQ order."""
    rows, n = q.shape
    if n % 8:
        raise ValueError(f"the AWQ layout needs output features in multiples of 8, not {n}")
    grouped = q.to(torch.int32).view(rows, n // 8, 8)
    packed = torch.zeros(rows, n // 8, dtype=torch.int32, device=q.device)
    for j, column in enumerate(AWQ_ORDER):
        packed |= grouped[:, :, column] << (4 * j)
    return packed


def _unpack_columns(packed: torch.Tensor) -> torch.Tensor:
    """int32 [R, N/8] in AWQ order -> uint8 [R, N]."""
    rows, words = packed.shape
    q = torch.empty(rows, words, 8, dtype=torch.uint8, device=packed.device)
    for j, column in enumerate(AWQ_ORDER):
        q[:, :, column] = ((packed >> (4 * j)) & 0xF).to(torch.uint8)
    return q.view(rows, words * 8)


def int4_to_awq(w: Int4Weight) -> dict[str, torch.Tensor]:
    q = unpack_int4(w.qweight, w.in_features)  # [K, N]
    return {"qweight": _pack_columns(q), "qzeros": _pack_columns(w.zeros), "scales": w.scales.to(torch.float16)}


def int4_from_awq(tensors: dict[str, torch.Tensor], group_size: int) -> Int4Weight:
    q = _unpack_columns(tensors["qweight"])
    return Int4Weight(pack_int4(q), tensors["scales"], _unpack_columns(tensors["qzeros"]), group_size, q.shape[0])


def int8_to_gptq(w: Int8Weight) -> dict[str, torch.Tensor]:
    k, n = w.qweight.shape
    if k % 4 or n % 4:
        raise ValueError(f"the GPTQ int8 layout needs features in multiples of 4, not {k} x {n}")
    unsigned = (w.qweight.to(torch.int32) + INT8_OFFSET).view(k // 4, 4, n)
    qweight = torch.zeros(k // 4, n, dtype=torch.int32, device=w.qweight.device)
    for byte in range(4):
        qweight |= unsigned[:, byte, :] << (8 * byte)
    zero = (INT8_OFFSET - 1) * 0x01010101  # four bytes of 127 in each word
    return {
        "qweight": qweight,
        "qzeros": torch.full((1, n // 4), zero, dtype=torch.int32, device=w.qweight.device),
        "scales": w.scales.reshape(1, n),
        "g_idx": torch.zeros(k, dtype=torch.int32, device=w.qweight.device),
    }


def int8_from_gptq(tensors: dict[str, torch.Tensor]) -> Int8Weight:
    packed = tensors["qweight"]
    rows, n = packed.shape
    unsigned = torch.stack([(packed >> (8 * byte)) & 0xFF for byte in range(4)], dim=1)
    q = (unsigned - INT8_OFFSET).to(torch.int8).reshape(rows * 4, n)
    return Int8Weight(q.contiguous(), tensors["scales"].reshape(n))


def vllm_quantization_config(bits: int, group_size: int | None) -> dict:
    """The `quantization_config` vLLM (and transformers) read from config.json."""
    if bits == 4:
        return {"quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True, "version": "gemm"}
    return {
        "quant_method": "gptq",
        "bits": 8,
        "group_size": -1,
        "desc_act": False,
        "sym": True,
        "lm_head": False,
        "checkpoint_format": "gptq",
    }


def vllm_refusal(bits: int, group_size: int | None, in_features: list[int]) -> str | None:
    """Why vLLM would not load this checkpoint, or None: it needs whole groups."""
    if bits != 4:
        return None
    assert group_size is not None, "a 4-bit checkpoint records its group size"
    if any(k % group_size for k in in_features):
        odd = sorted({k for k in in_features if k % group_size})
        return f"vLLM needs in_features divisible by the group size {group_size}; {odd} are not"
    return None
