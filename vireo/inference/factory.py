"""Build an engine from its configuration: backend `native`, `vllm`, `hf` or `openai`."""

from __future__ import annotations

import importlib.util
from typing import get_args

from vireo.inference.api import Engine, EngineError
from vireo.inference.engine_config import Backend, EngineConfig
from vireo.inference.registry import ModelRegistry

BACKENDS: tuple[str, ...] = get_args(Backend)


def backend_available(name: str) -> bool:
    """Whether `name` can run here (vLLM is an optional extra)."""
    if name == "vllm":
        return importlib.util.find_spec("vllm") is not None
    return name in BACKENDS


def create_engine(config: EngineConfig) -> Engine:
    """Resolve the model and construct `config.backend` (not yet started: call `await start()`).
    A setting this machine cannot honour (CUDA without a GPU) is an EngineError here, before any load."""
    backend = config.backend
    if backend == "openai":
        from vireo.inference.backends.openai import OpenAIEngine

        return OpenAIEngine(config)
    if not backend_available(backend):
        raise EngineError(f"backend {backend!r} is not installed here (pip install 'vireo[{backend}]')")
    config = config.resolved()
    if config.own_process:
        from vireo.inference.engine_process import EngineProcess

        return EngineProcess(config)
    resolved = ModelRegistry(config.home).resolve(config.model)
    if backend == "hf":
        from vireo.inference.backends.hf import HFEngine

        return HFEngine(config, resolved.path, resolved.name)
    if backend == "native":
        from vireo.inference.native.engine import NativeEngine

        return NativeEngine(config, resolved.path, resolved.name)
    from vireo.inference.backends.vllm import VLLMEngine

    return VLLMEngine(config, resolved.path, resolved.name)
