"""The pool `make run` serves when the deployment names no models (default_pool.py): the first of the
measured pools this machine can hold, installed and intact; SmolLM2 alone otherwise, saying why."""

from __future__ import annotations

import os

import pytest

from vireo.apps.registry import load_apps
from vireo.inference.registry import PACKAGED, ModelIntegrityError, ModelRegistry
from vireo.platform import default_pool
from vireo.platform.default_pool import (
    QWEN_LARGE,
    QWEN_SMALL,
    SMOLLM2,
    Pool,
    choose_default_pool,
    memory_needed_gib,
    user_named_models,
)
from vireo.platform.launcher import default_pool_environment
from vireo.platform.settings import Settings

PLENTY = 64 * 2**30
BOTH = Pool(QWEN_SMALL, {"code": QWEN_LARGE, "judge": QWEN_LARGE})
ONE = Pool(QWEN_SMALL)


@pytest.fixture
def no_models_named(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("VIREO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIREO_HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture
def two_pools(no_models_named):
    """Pools independent of the committed figures; every model installed and intact."""
    no_models_named.setattr(default_pool, "POOLS", [BOTH, ONE])
    no_models_named.setattr(ModelRegistry, "installed", lambda self, name: True)
    no_models_named.setattr(ModelRegistry, "resolve", lambda self, name: None)
    return no_models_named


def test_the_committed_pools_name_real_apps_and_packaged_models():
    apps = set(load_apps())
    for pool in default_pool.POOLS:
        assert set(pool.app_models) <= apps and set(pool.models) <= set(PACKAGED)
        assert set(pool.models) <= set(default_pool.WORKER_MEMORY_GIB)


def test_a_deployment_that_names_its_models_is_served_as_named(no_models_named):
    assert not user_named_models(Settings(_env_file=None))
    for variable, value in [
        ("VIREO_MODEL", "smollm2-135m"),
        ("VIREO_MODELS", "smollm2-135m"),
        ("VIREO_APP_MODELS", "code:smollm2-135m"),
    ]:
        no_models_named.setenv(variable, value)
        assert user_named_models(Settings(_env_file=None)), variable
        no_models_named.delenv(variable)


def test_the_best_pool_that_fits(two_pools):
    choice = choose_default_pool(Settings(_env_file=None), PLENTY)
    assert choice.models == [QWEN_SMALL, QWEN_LARGE]
    assert choice.app_models == {"code": QWEN_LARGE, "judge": QWEN_LARGE}
    # on a CPU the Qwen models run from their GGUF files' own blocks
    assert choice.model_engines == {QWEN_SMALL: {"quantization": "gguf"}, QWEN_LARGE: {"quantization": "gguf"}}
    assert f"{QWEN_LARGE} for code, judge" in choice.reason
    assert choice.environment()["VIREO_MODELS"] == f"{QWEN_SMALL},{QWEN_LARGE}"
    assert choice.environment()["VIREO_APP_MODELS"] == f"code:{QWEN_LARGE},judge:{QWEN_LARGE}"

    smaller = choose_default_pool(Settings(_env_file=None), int(memory_needed_gib(ONE) * 2**30))
    assert smaller.models == [QWEN_SMALL] and smaller.app_models == {}
    assert "passed over" in smaller.reason and "GiB needed" in smaller.reason


def test_smollm2_alone_where_nothing_fits_or_is_missing_or_broken(two_pools):
    settings = Settings(_env_file=None)
    small = choose_default_pool(settings, 2 * 2**30)
    assert small.models == [SMOLLM2] and "2.0 GiB available" in small.reason

    two_pools.setattr(ModelRegistry, "installed", lambda self, name: name == SMOLLM2)
    missing = choose_default_pool(settings, PLENTY)
    assert missing.models == [SMOLLM2] and "not installed" in missing.reason and "models-qwen" in missing.reason

    def tampered(self, name):
        raise ModelIntegrityError(f"{name}: sha256 differs from the pinned one")

    two_pools.setattr(ModelRegistry, "installed", lambda self, name: True)
    two_pools.setattr(ModelRegistry, "resolve", tampered)
    broken = choose_default_pool(settings, PLENTY)
    assert broken.models == [SMOLLM2] and "sha256 differs" in broken.reason


def test_make_run_hands_the_pool_to_every_process(two_pools, capsys):
    settings, env = default_pool_environment(Settings(_env_file=None))
    if settings.served_models == [SMOLLM2]:  # this machine has too little memory free for any pool
        assert env == {} and "SmolLM2 serves every app" in capsys.readouterr().out
        return
    assert settings.default_model == QWEN_SMALL and env["VIREO_MODELS"].startswith(QWEN_SMALL)
    assert settings.engine_for(QWEN_SMALL).quantization == "gguf"
    assert f"models: {', '.join(settings.served_models)}:" in capsys.readouterr().out

    two_pools.setenv("VIREO_MODEL", SMOLLM2)  # named: served as named, nothing printed
    settings, env = default_pool_environment(Settings(_env_file=None))
    assert settings.served_models == [SMOLLM2] and env == {} and capsys.readouterr().out == ""
