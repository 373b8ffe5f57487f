"""`--vs KEY=VALUE[,KEY=VALUE]` and the configurations it makes."""

import pytest

from vireo.tools.evals.configs import ConfigError, EvalConfig, Quantization, label, parse_overrides, variant_of


def test_overrides_parse_into_a_dict():
    assert parse_overrides("backend=vllm, quant=int4") == {"backend": "vllm", "quant": "int4"}


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("backend", "KEY=VALUE"),
        ("colour=red", "unknown key"),
        ("spec=off,spec=prompt_lookup", "twice"),
        (" , ", "nothing"),
    ],
)
def test_malformed_overrides_are_refused_clearly(text, complaint):
    with pytest.raises(ConfigError, match=complaint):
        parse_overrides(text)


def test_variant_changes_only_what_vs_names():
    variant = variant_of(EvalConfig(), "spec=prompt_lookup")
    assert variant == EvalConfig(spec="prompt_lookup")
    assert EvalConfig().differences(variant) == {"spec": "prompt_lookup"}


def test_a_variant_equal_to_the_base_is_refused():
    with pytest.raises(ConfigError, match="nothing to compare"):
        variant_of(EvalConfig(), "backend=native")


@pytest.mark.parametrize(
    "vs, complaint",
    [
        ("backend=tensorrt", "backend"),
        ("spec=draft", "spec"),
        ("quant=int3", "gguf, int8 or int4"),
        ("quant=int4-fancy", "method"),
        ("quant=int8,backend=hf", "native"),
        ("backend=hf,spec=prompt_lookup", "speculate"),
    ],
)
def test_impossible_variants_are_refused(vs, complaint):
    with pytest.raises(ConfigError, match=complaint):
        variant_of(EvalConfig(), vs)


def test_quant_names_pick_the_measured_default_method():
    assert Quantization.parse("int8") == Quantization(8, "rtn")
    assert Quantization.parse("int4") == Quantization(4, "awq", 128)
    assert Quantization.parse("int4-gptq-g64") == Quantization(4, "gptq", 64)
    assert Quantization.parse("none") is None


def test_quantized_checkpoints_share_the_folder_vireo_quantize_writes():
    assert Quantization(4, "gptq", 128).checkpoint_dir_name("smollm2-135m") == "smollm2-135m-gptq-w4g128"


def test_labels_name_what_differs_for_file_names():
    base = EvalConfig()
    assert label(base) == ""
    assert label(variant_of(base, "quant=int8"), base) == "quant-int8-rtn"
    assert label(EvalConfig(model="org/model", backend="hf")) == "model-org_model-backend-hf"


def test_quant_gguf_serves_the_files_own_blocks():
    """quant=gguf: no checkpoint of ours; the engine reads the GGUF file's blocks (how `make run` serves
    the packaged Qwen models on a CPU)."""
    variant = variant_of(EvalConfig(), "model=qwen2.5-coder-1.5b,quant=gguf")
    assert variant.quantization is None and variant.engine_settings == {"quantization": "gguf"}
    assert label(variant) == "model-qwen2.5-coder-1.5b-quant-gguf"
    assert EvalConfig().engine_settings == {}
    with pytest.raises(ConfigError, match="native"):
        variant_of(EvalConfig(), "quant=gguf,backend=hf")


def test_quant_gguf_reaches_the_engine_and_the_worker():
    from vireo.tools.evals.engine_settings import engine_config, worker_environment

    config = EvalConfig(model="smollm2-135m", quant="gguf")
    assert engine_config(config).quantization == "gguf"
    assert worker_environment(config)["VIREO_QUANTIZATION"] == "gguf"
    assert "VIREO_QUANTIZATION" not in worker_environment(EvalConfig())
