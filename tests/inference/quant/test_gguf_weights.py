"""GGUF blocks read straight into the CPU kernels' forms, against gguf's own de-quantization.

Bounds, per format, of the conversion's error against `gguf.quants.dequantize`:
- Q4_0 / Q4_1 / Q4_K -> int4 grid (q, per-32 scale and offset): exact (equal floats).
- ... -> the int4 kernel's weight: each scale and zero rounded to bfloat16, so
  |error| <= 2^-8 (|q - 8| * scale + |zero|), zero = offset + 8 * scale.
- Q8_0 / Q6_K -> int8 per output channel: at most half a step (the row's bfloat16 scale / 2).
"""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from vireo.inference.quant.gguf_weights import (
    GgufWeights,
    int8_rows,
    q4_grid,
    q5_0_as_q8_0,
    read_header,
    rope_row_order,
)
from vireo.kernels import cpu_gguf_dot
from vireo.kernels.cpu_quant import CpuGgufWeight, amx_bfloat16, gguf_blocks_supported, pack_int4

ROWS, K = 48, 512


def random_blocks(kind: T, rows: int = ROWS, k: int = K, seed: int = 0) -> np.ndarray:
    """Rows [rows, bytes] of random blocks of `kind` whose float fields are sane float16 values."""
    rng = np.random.default_rng(seed)
    if kind == T.Q8_0:
        return quantize(rng.standard_normal((rows, k)).astype(np.float32) * 0.05, T.Q8_0)
    sizes = {T.Q4_0: (32, 18), T.Q4_1: (32, 20), T.Q4_K: (256, 144), T.Q6_K: (256, 210)}
    block, size = sizes[kind]
    raw = rng.integers(0, 256, (rows, k // block, size), dtype=np.uint8)

    def put(at: int, low: float, high: float) -> None:
        values = rng.uniform(low, high, (rows, k // block)).astype(np.float16)
        raw[..., at : at + 2] = values.view(np.uint8).reshape(rows, k // block, 2)

    if kind in (T.Q4_0, T.Q4_1, T.Q4_K):
        put(0, 1e-3, 2e-2)  # d
    if kind in (T.Q4_1, T.Q4_K):
        put(2, -0.1, 0.1) if kind == T.Q4_1 else put(2, 1e-4, 2e-3)  # m (Q4_1) or dmin (Q4_K)
    if kind == T.Q6_K:
        put(208, 1e-4, 1e-3)  # d, after ql, qh and the int8 sub-scales
    return raw.reshape(rows, -1)


def gguf_reference(raw: np.ndarray, kind: T) -> torch.Tensor:
    return torch.from_numpy(np.array(dequantize(raw, kind), dtype=np.float32))


@pytest.mark.parametrize("kind", [T.Q4_0, T.Q4_1, T.Q4_K])
def test_q4_blocks_become_int4_values_scales_and_offsets_exactly(kind):
    raw = random_blocks(kind)
    grid = q4_grid(raw, kind.name)
    assert grid.group_size == 32 and grid.shape == (ROWS, K)
    assert torch.equal(grid.dequantize(), gguf_reference(raw, kind))


@pytest.mark.parametrize("kind", [T.Q4_0, T.Q4_1, T.Q4_K])
def test_the_int4_kernels_weight_is_the_files_up_to_bfloat16_scales(kind):
    raw = random_blocks(kind, seed=1)
    grid = q4_grid(raw, kind.name)
    kernel_weight = pack_int4(grid).dequantize()
    scale = grid.scale.repeat_interleave(32, 1)
    zero = (grid.minimum + 8 * grid.scale).repeat_interleave(32, 1)
    bound = 2**-8 * ((grid.q.float() - 8).abs() * scale + zero.abs()) * (1 + 2**-16)
    assert ((kernel_weight - gguf_reference(raw, kind)).abs() <= bound).all()


@pytest.mark.parametrize("kind", [T.Q8_0, T.Q6_K])
def test_other_block_types_become_int8_per_channel_within_half_a_step(kind):
    raw = random_blocks(kind, seed=2)
    weight = int8_rows(raw, kind)
    step = weight.scales.float()[:, None]
    error = (weight.dequantize() - gguf_reference(raw, kind)).abs()
    assert (error <= step / 2 * (1 + 1e-5)).all()


def test_llama_q_and_k_rows_are_put_back_in_hf_order_as_transformers_does():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    for rows, heads in [(576, 9), (192, 3), (64, 4)]:
        theirs = LlamaTensorProcessor()._reverse_permute_weights(np.arange(rows), heads, heads)
        assert np.array_equal(rope_row_order(rows, heads), theirs)


@pytest.fixture(scope="module")
def smollm2_gguf():
    from vireo.inference.registry import PACKAGED, _package_dir

    model = PACKAGED["smollm2-135m"]
    folder = _package_dir(model.packages[0])
    if folder is None:
        pytest.skip("the smollm2 package is not installed")
    return folder / model.gguf_name


@pytest.mark.slow  # gguf's reader decodes the tokenizer's arrays: seconds
def test_the_header_reader_finds_what_gguf_reader_finds(smollm2_gguf):
    from gguf import GGUFReader

    metadata, tensors = read_header(smollm2_gguf)
    reader = GGUFReader(smollm2_gguf)
    assert metadata["general.architecture"] == "llama" and metadata["llama.block_count"] == 30
    theirs = [(t.name, t.tensor_type, tuple(int(d) for d in t.shape), t.data_offset, t.n_bytes) for t in reader.tensors]
    assert [(t.name, t.type, t.shape, t.offset, t.n_bytes) for t in tensors] == theirs


@pytest.mark.slow
def test_smollm2_weights_equal_those_transformers_converted(smollm2_gguf):
    """The registry's float32 folder was made by transformers' GGUF loader (de-quantized, q/k rows
    un-permuted): our weights must equal it exactly (the file's blocks, or int4 grids without our kernel),
    the Q8_0 embedding too (within half an int8 step where it becomes int8 rows)."""
    from safetensors import safe_open
    from transformers import AutoConfig

    from vireo.inference.registry import ModelRegistry

    folder = ModelRegistry().resolve("smollm2-135m").path
    weights = GgufWeights(smollm2_gguf, AutoConfig.from_pretrained(folder), torch.float32)
    names = [f"model.layers.{i}.{n}.weight" for i in (0, 29) for n in ("self_attn.q_proj", "self_attn.k_proj")]
    names += ["model.layers.7.self_attn.v_proj.weight", "model.layers.7.mlp.down_proj.weight"]
    with safe_open(str(next(folder.glob("*.safetensors"))), framework="pt") as f:
        for name in names:
            assert weights.type_of(name) == "Q4_1"
            assert torch.equal(weights[name].dequantize(), f.get_tensor(name)), name
        embed = weights["model.embed_tokens.weight"]
        if isinstance(embed, CpuGgufWeight):  # the file's Q8_0 blocks: exact
            assert torch.equal(embed.dequantize(), f.get_tensor("model.embed_tokens.weight"))
        else:
            error = (embed.dequantize() - f.get_tensor("model.embed_tokens.weight")).abs()
            assert (error <= embed.scales.float()[:, None] / 2 * (1 + 1e-5)).all()
        torch.testing.assert_close(weights["model.norm.weight"], f.get_tensor("model.norm.weight"), rtol=0, atol=0)


def test_a_fused_projection_of_mixed_formats_runs_each_run_of_parts_on_its_kernel():
    """Q4_K_M files keep some layers' v_proj in Q6_K beside Q4_K q/k: q and k fuse into one int4
    linear, v runs as int8, outputs (and the q/k/v biases) stay in order."""
    from vireo.inference.native.models.layers import ConcatLinear
    from vireo.inference.native.models.llama import fused_linear

    q, k = (
        q4_grid(random_blocks(T.Q4_K, 64, 256, seed=3), "Q4_K"),
        q4_grid(random_blocks(T.Q4_K, 32, 256, seed=4), "Q4_K"),
    )
    v = int8_rows(random_blocks(T.Q6_K, 32, 256, seed=5), T.Q6_K)
    bias = torch.randn(128)
    linear = fused_linear([q, k, v], bias, batch_hint=8)
    assert isinstance(linear, ConcatLinear) and [p.out_features for p in linear.parts] == [96, 32]
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(0))
    dense = torch.cat([pack_int4(q).dequantize(), pack_int4(k).dequantize(), v.dequantize()])
    reference = x @ dense.t() + bias
    # the kernels round x (bfloat16, or int8 per block of 32 on our AVX2 kernel: about 1 % of the output's
    # scale); a part out of order or a bias misplaced is off by the output's whole scale
    assert (linear(x) - reference).abs().max() <= 2e-2 * reference.abs().max()


@pytest.mark.skipif(cpu_gguf_dot.load_kernel() is None, reason="AVX2 extension not available here")
def test_with_our_kernel_each_tensor_keeps_the_files_blocks_and_formats_fuse_apart(tmp_path):
    """Where `cpu_gguf_dot` builds, a layer's tensor is its own rows of blocks (the file's bytes); a
    Q4_K_M layer's Q4_K q/k fuse into one linear beside its Q6_K v, outputs in order."""
    from vireo.inference.native.models.layers import ConcatLinear
    from vireo.inference.native.models.llama import fused_linear

    raws = [random_blocks(T.Q4_K, 64, 256, seed=3), random_blocks(T.Q4_K, 32, 256, seed=4)]
    raws.append(random_blocks(T.Q6_K, 32, 256, seed=5))
    parts = [CpuGgufWeight(torch.from_numpy(r), kind, 256) for r, kind in zip(raws, ["Q4_K", "Q4_K", "Q6_K"])]
    bias = torch.randn(128)
    linear = fused_linear(parts, bias, batch_hint=8)
    assert isinstance(linear, ConcatLinear) and [p.out_features for p in linear.parts] == [96, 32]
    assert [p.cpu_weight.block_type for p in linear.parts] == ["Q4_K", "Q6_K"]
    x = torch.randn(3, 256, generator=torch.Generator().manual_seed(1))
    dense = torch.cat([gguf_reference(r, T[kind]) for r, kind in zip(raws, ["Q4_K", "Q4_K", "Q6_K"])])
    reference = x @ dense.t() + bias
    assert (linear(x) - reference).abs().max() <= 2e-2 * reference.abs().max()  # x rounded to int8 per 256


def test_q5_0_rows_become_q8_0_rows_of_the_same_weights():
    rng = np.random.default_rng(6)
    raw = rng.integers(0, 256, (ROWS, K // 32, 22), dtype=np.uint8)
    raw[..., :2] = rng.uniform(1e-3, 2e-2, (ROWS, K // 32)).astype(np.float16).view(np.uint8).reshape(ROWS, -1, 2)
    raw = raw.reshape(ROWS, -1)
    assert torch.equal(gguf_reference(q5_0_as_q8_0(raw), T.Q8_0), gguf_reference(raw, T.Q5_0))


def write_gguf(path: Path, tensors: dict[str, tuple[np.ndarray, T]]) -> Path:
    """A Qwen2 GGUF file holding these tensors (float32 values, quantized to their block type by gguf)."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "qwen2")
    for name, (values, kind) in tensors.items():
        writer.add_tensor(name, quantize(values, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def file_mapping_holds(path: Path, address: int) -> bool:
    """Whether `address` lies in a mapping of the file at `path` (/proc/self/maps)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == str(Path(path).resolve()):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end:
                return True
    return False


@pytest.mark.skipif(not gguf_blocks_supported("Q5_0", 256), reason="AVX2 extension not available here")
@pytest.mark.parametrize("vnni", [False, True])
@pytest.mark.parametrize("rows", [64, 72])
def test_a_q5_0_embedding_beside_an_output_layer_keeps_its_own_blocks(tmp_path, vnni, rows, monkeypatch):
    """Only lookups read it (the output layer is a tensor of its own), so it stays Q5_0 (22 bytes a block,
    not Q8_0's 34); its rows are the file's. Tied to the LM head, a matrix the matmuls read: its own blocks,
    sixteen rows interleaved, where the rows come in sixteens or the kernel runs on AVX-512 VNNI; Q8_0 blocks
    otherwise (`blocks_served`; every decision checked on any CPU, the kernel has Q5_0 dot products for
    either instruction set)."""
    monkeypatch.setattr(cpu_gguf_dot, "vnni", lambda: vnni)
    rng = np.random.default_rng(0)
    embed = rng.standard_normal((rows, 256)).astype(np.float32)
    config = SimpleNamespace(num_attention_heads=4, num_key_value_heads=2)
    untied = write_gguf(
        tmp_path / "untied.gguf", {"token_embd.weight": (embed, T.Q5_0), "output.weight": (embed, T.Q8_0)}
    )
    weights = GgufWeights(untied, config, torch.float32)
    looked_up = weights["model.embed_tokens.weight"]
    assert isinstance(looked_up, CpuGgufWeight) and looked_up.block_type == "Q5_0"
    want = gguf_reference(weights.raw("model.embed_tokens.weight"), T.Q5_0)
    picked = torch.tensor([0, 5, rows - 1])
    assert torch.equal(looked_up.rows(picked, torch.float32), want[picked])
    # mapped from the file, not read into memory of its own: a lookup touches only its rows' pages
    assert file_mapping_holds(untied, looked_up.blocks.data_ptr())
    tied = write_gguf(tmp_path / "tied.gguf", {"token_embd.weight": (embed, T.Q5_0)})
    head = GgufWeights(tied, config, torch.float32)["model.embed_tokens.weight"]
    in_sixteens = rows % 16 == 0
    served = "Q5_0" if vnni or in_sixteens else "Q8_0"
    layout = served + "_X16" if in_sixteens and not amx_bfloat16() else served
    assert isinstance(head, CpuGgufWeight) and head.block_type == layout
    assert torch.equal(head.rows(picked, torch.float32), want[picked])
    x = torch.randn(2, 256, generator=torch.Generator().manual_seed(2))
    reference = x @ want.t()
    assert (head.matmul(x) - reference).abs().max() <= 2e-2 * reference.abs().max()  # x rounded to int8 per 32


def test_reading_gguf_files_does_not_load_mistral_tokenizers():
    """gguf's package imports mistral_common's tokenizers where the vllm extra installs them (~50 MB in
    every engine process); the weights reader imports gguf with them hidden."""
    pytest.importorskip("mistral_common", reason="mistral_common is not installed here: nothing to hide")
    code = (
        "import sys, vireo.inference.quant.gguf_weights, gguf.quants\n"
        "print(sorted(m for m in sys.modules if m.startswith('mistral_common')))\n"
        "import mistral_common.tokens\n"  # still importable by whoever wants it later
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
