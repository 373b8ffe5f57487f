"""The engine's settings as the platform reads them: one object, from the `VIREO_*` names users have
always set (and the nested `VIREO_ENGINE__*` form), which the worker builds its engine from and the
submit-time length check shares (issue #16)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from vireo.apps.base import AppInputError
from vireo.apps.registry import get_app
from vireo.inference.engine_config import EngineConfig
from vireo.platform.input_limits import ModelLimits
from vireo.platform.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/10"  # this file's own database
RUNTIME_PACKAGES = ("platform", "apps", "inference", "kernels", "ui")

OLD_NAMES = {  # the variables README, docs and docker-compose have documented, with a non-default value
    "VIREO_ENGINE": ("backend", "hf", "hf"),
    "VIREO_MODEL": ("model", "qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b"),
    "VIREO_DTYPE": ("dtype", "bfloat16", "bfloat16"),
    "VIREO_MAX_BATCH": ("max_batch", "7", 7),
    "VIREO_MAX_MODEL_LEN": ("max_model_len", "1024", 1024),
    "VIREO_THREADS": ("threads", "3", 3),
    "VIREO_KV_CACHE_TOKENS": ("kv_cache_tokens", "2048", 2048),
    "VIREO_BLOCK_SIZE": ("block_size", "32", 32),
    "VIREO_PREFIX_CACHING": ("prefix_caching", "false", False),
    "VIREO_SPECULATION": ("speculation", "prompt_lookup", "prompt_lookup"),
    "VIREO_DRAFT_MODEL": ("draft_model", "smollm2-135m", "smollm2-135m"),
    "VIREO_NUM_SPECULATIVE_TOKENS": ("num_speculative_tokens", "4", 4),
    "VIREO_OPENAI_BASE_URL": ("openai_base_url", "http://gpu-box:8000/v1", "http://gpu-box:8000/v1"),
    "VIREO_OPENAI_API_KEY": ("openai_api_key", "sk-remote", "sk-remote"),
    "VIREO_OPENAI_MODEL": ("openai_model", "served-name", "served-name"),
}
NEW_NAMES = {
    "VIREO_DEVICE": ("device", "cpu", "cpu"),
    "VIREO_QUANTIZATION": ("quantization", "int4", "int4"),
    "VIREO_CUDA_GRAPHS": ("cuda_graphs", "0", False),
    "VIREO_OVERLAP_DECODE": ("overlap_decode", "false", False),
    "VIREO_DENSE_GEMV": ("dense_gemv", "0", False),
    "VIREO_KV_CACHE_MEMORY_FRACTION": ("kv_cache_memory_fraction", "0.8", 0.8),
    "VIREO_KV_CACHE_DTYPE": ("kv_cache_dtype", "float32", "float32"),
}


@pytest.fixture
def clean_env(monkeypatch):
    """No engine variable of the caller's shell leaks into these tests."""
    for name in [*OLD_NAMES, *NEW_NAMES, "VIREO_HOME"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variable", sorted(OLD_NAMES))
def test_each_documented_flat_variable_still_sets_the_engine(clean_env, variable):
    field, raw, expected = OLD_NAMES[variable]
    assert getattr(EngineConfig(), field) != expected  # the variable, not the default, sets it
    clean_env.setenv(variable, raw)
    assert getattr(Settings(_env_file=None).engine, field) == expected


@pytest.mark.parametrize("variable", sorted(NEW_NAMES))
def test_the_new_engine_settings_have_flat_variables_too(clean_env, variable):
    field, raw, expected = NEW_NAMES[variable]
    clean_env.setenv(variable, raw)
    assert getattr(Settings(_env_file=None).engine, field) == expected


def test_the_nested_form_wins_over_the_flat_name(clean_env):
    clean_env.setenv("VIREO_MAX_BATCH", "7")
    clean_env.setenv("VIREO_ENGINE__MAX_BATCH", "9")
    clean_env.setenv("VIREO_ENGINE__DEVICE", "cpu")
    engine = Settings(_env_file=None).engine
    assert (engine.max_batch, engine.device) == (9, "cpu")


def test_a_dot_env_file_sets_the_engine(clean_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("VIREO_ENGINE=hf\nVIREO_MODEL=qwen2.5-coder-0.5b\nVIREO_QUANTIZATION=int8\n")
    engine = Settings(_env_file=env_file).engine
    assert (engine.backend, engine.model, engine.quantization) == ("hf", "qwen2.5-coder-0.5b", "int8")


def test_the_environment_wins_over_the_dot_env_file(clean_env, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("VIREO_MODEL=from-file\n")
    clean_env.setenv("VIREO_MODEL", "from-env")
    assert Settings(_env_file=env_file).engine.model == "from-env"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("VIREO_DEVICE", "tpu"), ("VIREO_QUANTIZATION", "int3"), ("VIREO_ENGINE", "tensorrt"), ("VIREO_MAX_BATCH", "0")],
)
def test_a_value_outside_the_choices_is_refused_when_settings_are_read(clean_env, variable, value):
    clean_env.setenv(variable, value)
    with pytest.raises(ValueError, match=NEW_NAMES.get(variable, OLD_NAMES.get(variable, ("backend",)))[0]):
        Settings(_env_file=None)


def test_the_engine_reads_models_from_the_platform_home(clean_env, tmp_path):
    clean_env.setenv("VIREO_HOME", str(tmp_path))
    settings = Settings(_env_file=None)
    assert settings.home == settings.engine.home == tmp_path
    assert Settings(_env_file=None, home=tmp_path / "other").engine.home == tmp_path / "other"


def test_no_runtime_module_reads_our_variables_behind_the_settings_back():
    """VIREO_* and REDIS_URL are read by the settings object only (the launcher still hands an
    environment to the processes it starts, which is writing, not reading)."""
    read = re.compile(r"(environ\.get\(|environ\[|getenv\()\s*[\"'](VIREO_|REDIS_URL)")
    package = Path(__file__).resolve().parents[2] / "vireo"
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for folder in RUNTIME_PACKAGES
        for path in sorted((package / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if read.search(line)
    ]
    assert offenders == []


def _settings(clean_env, **variables) -> Settings:
    for name, value in {"VIREO_REDIS_URL": REDIS_URL, "VIREO_MODEL": "smollm2-135m", **variables}.items():
        clean_env.setenv(name, value)
    return Settings(_env_file=None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="asserts the CPU choice of `auto`")
def test_the_worker_builds_its_engine_from_settings_alone(clean_env):
    from vireo.platform.runtime import WorkerRuntime

    settings = _settings(
        clean_env,
        VIREO_QUANTIZATION="int4",
        VIREO_KV_CACHE_TOKENS="2048",
        VIREO_MAX_MODEL_LEN="512",
        VIREO_MAX_BATCH="4",
        VIREO_QUEUE="test-engine-settings",
    )
    runtime = WorkerRuntime(settings)
    try:
        engine = runtime.engine
        assert (engine.backend, engine.config.device, engine.config.dtype) == ("native", "cpu", "float32")
        assert type(engine.model.layers[0].qkv).__name__ == "QuantizedLinear"
        assert engine.blocks.num_blocks * engine.blocks.block_size == 2048
        assert engine.context_length == 512
    finally:
        runtime.heartbeat.stop()
        runtime.call(runtime.engine.shutdown())
        runtime.loop.call_soon_threadsafe(runtime.loop.stop)


def test_the_submit_time_check_uses_the_engines_context(clean_env):
    from vireo.inference.factory import create_engine

    settings = _settings(clean_env, VIREO_MAX_MODEL_LEN="300", VIREO_DEVICE="cpu")
    limits = ModelLimits(settings).load()
    engine = create_engine(settings.engine)
    assert limits.context == engine.context_length == 300


async def test_a_job_longer_than_the_engines_context_is_refused_at_submit(clean_env):
    settings = _settings(clean_env, VIREO_MAX_MODEL_LEN="64")
    app = get_app("summarize")
    too_long = app.Input.model_validate({"text": "a sentence about the weather. " * 40})
    with pytest.raises(AppInputError):
        await ModelLimits(settings).check(app, too_long)
    fits = app.Input.model_validate({"text": "short."})
    settings = _settings(clean_env, VIREO_MAX_MODEL_LEN="4096")
    await ModelLimits(settings).check(app, fits)
