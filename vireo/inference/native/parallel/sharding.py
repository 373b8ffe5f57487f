"""Which part of each weight a tensor-parallel rank holds (Megatron's split, as vLLM and SGLang do it).

Column-parallel: q/k/v by attention heads (a rank's query heads with their key/value heads), gate/up by
intermediate features; each rank's attention and SiLU run on its own slice with no communication.
Row-parallel: o and down by input features, their partial outputs summed over the ranks
(`TensorParallel.all_reduce`). Vocabulary-parallel: the LM head's rows, the logits gathered. The
embedding and the norms are replicated. Float weights and `vireo quantize` int8/int4 weights are cut
the same way (int4 along whole groups); a plain model quantized at load is cut first, then each shard
is quantized (`LlamaModel.from_pretrained`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from vireo.kernels.qweight import Int4Weight, Int8Weight

_LAYER = re.compile(r"model\.layers\.\d+\.(self_attn|mlp)\.(\w+)_proj\.(weight|bias)")
_HEAD_ROWS = {"q": "heads", "k": "kv_heads", "v": "kv_heads"}


def check_shardable(hf_config, size: int) -> None:
    """A clear ValueError unless the model's heads and MLP split evenly over `size` ranks."""
    heads = hf_config.num_attention_heads
    kv_heads = getattr(hf_config, "num_key_value_heads", None) or heads
    intermediate = hf_config.intermediate_size
    for what, count in (("attention heads", heads), ("key/value heads", kv_heads), ("MLP features", intermediate)):
        if count % size:
            raise ValueError(
                f"tensor_parallel_size {size} does not divide the model's {count} {what}: "
                f"use a size that divides {heads} heads, {kv_heads} key/value heads and {intermediate} MLP features"
            )


class Shard:
    """Cuts rank `rank` of `size`'s part out of each named weight (`__call__`)."""

    def __init__(self, hf_config, rank: int, size: int):
        check_shardable(hf_config, size)
        self.rank, self.size = rank, size
        self.heads = hf_config.num_attention_heads
        self.kv_heads = getattr(hf_config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // self.heads
        self.vocab = hf_config.vocab_size
        self.vocab_per_rank = -(-self.vocab // size)  # the last rank's shard padded with zero rows

    def __call__(self, name: str, weight):
        match = _LAYER.fullmatch(name)
        if name == "lm_head.weight":
            return self.vocab_rows(weight)
        if match is None:  # embedding, norms: every rank holds them whole
            return weight
        block, proj, kind = match.groups()
        if proj in _HEAD_ROWS:
            per_rank = getattr(self, _HEAD_ROWS[proj]) // self.size * self.head_dim
            return _rows(weight, self.rank * per_rank, per_rank)
        if proj in ("gate", "up"):
            per_rank = _out_features(weight) // self.size
            return _rows(weight, self.rank * per_rank, per_rank)
        assert kind == "weight", f"{name}: a row-parallel projection's bias would be added once per rank"
        per_rank = _in_features(weight) // self.size  # o, down
        return _columns(weight, self.rank * per_rank, per_rank)

    def vocab_rows(self, weight):
        """This rank's rows of the LM head (or of the tied embedding), zero-padded to `vocab_per_rank`."""
        start = self.rank * self.vocab_per_rank
        count = max(0, min(self.vocab_per_rank, self.vocab - start))
        rows = _rows(weight, start, count)
        if count == self.vocab_per_rank:
            return rows
        if not isinstance(rows, torch.Tensor):
            raise ValueError(f"a quantized LM head of {self.vocab} rows does not split over {self.size} ranks")
        return torch.cat([rows, rows.new_zeros(self.vocab_per_rank - count, rows.shape[1])])

    def tie_head(self, mine: dict) -> dict:
        """`mine` (weights already cut) with this rank's LM head rows taken from a tied embedding."""
        if "lm_head.weight" not in mine:  # tied: the embedding stays whole, the head takes its rows
            mine["lm_head.weight"] = self.vocab_rows(mine["model.embed_tokens.weight"])
        return mine


def shard_weights(weights: Mapping, shard: Shard) -> dict:
    """Rank `shard.rank`'s weights: each cut by `shard`, plus its rows of a tied LM head."""
    return shard.tie_head({name: shard(name, w) for name, w in weights.items()})


def _out_features(weight) -> int:
    return weight.shape[0]


def _in_features(weight) -> int:
    return weight.shape[1]


def _rows(weight, start: int, count: int):
    """Output features [start, start + count)."""
    if isinstance(weight, torch.Tensor):
        return weight[start : start + count].contiguous()
    if isinstance(weight, Int8Weight):  # qweight [K, N], scales [N]
        return Int8Weight(weight.qweight[:, start : start + count].contiguous(), weight.scales[start : start + count])
    if isinstance(weight, Int4Weight):  # qweight [K/8, N], scales and zeros [K/group, N]
        cols = slice(start, start + count)
        return Int4Weight(
            weight.qweight[:, cols].contiguous(),
            weight.scales[:, cols].contiguous(),
            weight.zeros[:, cols].contiguous(),
            weight.group_size,
            weight.in_features,
        )
    raise TypeError(f"cannot shard a {type(weight).__name__} weight")


def _columns(weight, start: int, count: int):
    """Input features [start, start + count)."""
    if isinstance(weight, torch.Tensor):
        return weight[:, start : start + count].contiguous()
    if isinstance(weight, Int8Weight):  # per-output-channel scales: the columns' products are unchanged
        return Int8Weight(weight.qweight[start : start + count].contiguous(), weight.scales)
    if isinstance(weight, Int4Weight):
        group = weight.group_size
        if start % group or count % group:
            raise ValueError(
                f"int4 groups of {group} do not split {weight.in_features} input features into shards of {count}: "
                "quantize with a group size that divides the shard, or use int8"
            )
        return Int4Weight(
            weight.qweight[start // 8 : (start + count) // 8].contiguous(),
            weight.scales[start // group : (start + count) // group].contiguous(),
            weight.zeros[start // group : (start + count) // group].contiguous(),
            group,
            count,
        )
    raise TypeError(f"cannot shard a {type(weight).__name__} weight")
