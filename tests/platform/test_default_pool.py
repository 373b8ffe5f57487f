"""The pool `make run` serves when the deployment names no models (default_pool.py): the larger model for
the apps its evals favour, only where it is installed, intact and fits; SmolLM2 otherwise, saying why."""

from __future__ import annotations

import os

import pytest

from vireo.apps.registry import load_apps
from vireo.inference.registry import PACKAGED, ModelIntegrityError, ModelRegistry
from vireo.platform import default_pool
from vireo.platform.default_pool import LARGE, SMALL, choose_default_pool, user_named_models
from vireo.platform.launcher import default_pool_environment
from vireo.platform.settings import Settings

PLENTY = 64 * 2**30


@pytest.fixture
def no_models_named(monkeypatch, tmp_path):
    for name in [n for n in os.environ if n.startswith("VIREO_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("VIREO_HOME", str(tmp_path))
    return monkeypatch


@pytest.fixture
def code_on_large(no_models_named):
    """A pool choice independent of the committed figures."""
    no_models_named.setattr(default_pool, "APP_MODELS", {"code": LARGE, "judge": LARGE})
    no_models_named.setattr(ModelRegistry, "installed", lambda self, name: True)
    no_models_named.setattr(ModelRegistry, "resolve", lambda self, name: None)
    return no_models_named


def test_the_committed_choice_names_real_apps_and_packaged_models():
    assert set(default_pool.APP_MODELS) <= set(load_apps())
    assert set(default_pool.APP_MODELS.values()) <= set(PACKAGED) - {SMALL}
    assert set(default_pool.WORKER_MEMORY_GIB) >= {SMALL, *default_pool.APP_MODELS.values()}


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


def test_the_pool_where_the_larger_model_fits(code_on_large):
    choice = choose_default_pool(Settings(_env_file=None), PLENTY)
    assert choice.models == [SMALL, LARGE]
    assert choice.app_models == {"code": LARGE, "judge": LARGE}
    assert choice.model_engines == {LARGE: {"quantization": "gguf"}}  # on a CPU: the GGUF file's own blocks
    assert "code, judge" in choice.reason
    assert choice.environment() == {
        "VIREO_MODELS": f"{SMALL},{LARGE}",
        "VIREO_APP_MODELS": f"code:{LARGE},judge:{LARGE}",
        "VIREO_MODEL_ENGINES": '{"qwen2.5-coder-1.5b": {"quantization": "gguf"}}',
    }


def test_smollm2_alone_where_it_does_not_fit_or_is_missing_or_broken(code_on_large):
    settings = Settings(_env_file=None)
    small = choose_default_pool(settings, 2 * 2**30)
    assert small.models == [SMALL] and "2.0 GiB of memory available" in small.reason

    code_on_large.setattr(ModelRegistry, "installed", lambda self, name: name == SMALL)
    missing = choose_default_pool(settings, PLENTY)
    assert missing.models == [SMALL] and "not installed" in missing.reason and "models-qwen" in missing.reason

    def tampered(self, name):
        raise ModelIntegrityError(f"{name}: sha256 differs from the pinned one")

    code_on_large.setattr(ModelRegistry, "installed", lambda self, name: True)
    code_on_large.setattr(ModelRegistry, "resolve", tampered)
    broken = choose_default_pool(settings, PLENTY)
    assert broken.models == [SMALL] and "sha256 differs" in broken.reason


def test_make_run_hands_the_pool_to_every_process(code_on_large, capsys):
    settings, env = default_pool_environment(Settings(_env_file=None))
    if settings.served_models == [SMALL]:  # this machine has too little memory free for the pool
        assert env == {} and "SmolLM2 serves every app" in capsys.readouterr().out
        return
    assert settings.served_models == [SMALL, LARGE] and settings.apps_default_models()["code"] == LARGE
    assert settings.engine_for(LARGE).quantization == "gguf" and settings.default_model == SMALL
    assert env["VIREO_MODELS"] == f"{SMALL},{LARGE}"
    assert "models: smollm2-135m, qwen2.5-coder-1.5b:" in capsys.readouterr().out

    code_on_large.setenv("VIREO_MODEL", SMALL)  # named: served as named, nothing printed
    settings, env = default_pool_environment(Settings(_env_file=None))
    assert settings.served_models == [SMALL] and env == {} and capsys.readouterr().out == ""
