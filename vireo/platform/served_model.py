"""The name clients use for the model this deployment serves (VIREO_MODEL, VIREO_MODEL_ALIAS).

A local file is configured by path, but a path is no name for clients: a GGUF file is served as
`<stem>-<sha8>` (the registry's id, which also names its converted folder), a folder by its name,
and `VIREO_MODEL_ALIAS` replaces either. `/v1/models`, replies and the banner use that name;
requests may name the model by it, by the id, by the configured value, or as "default".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vireo.inference.registry import ModelRegistry


@dataclass(frozen=True)
class ServedModel:
    name: str  # what clients see: the alias, else the model id
    model_id: str  # the registry's id of the weights really served
    configured: str  # VIREO_MODEL as set: a registry name, a folder, a .gguf path or a hub id

    def answers_to(self, requested: str) -> bool:
        return requested in (self.name, self.model_id, self.configured, "default")


@lru_cache(maxsize=8)
def _served(model: str, alias: str | None, home: Path) -> ServedModel:
    model_id = ModelRegistry(home).model_id(model)
    return ServedModel(name=alias or model_id, model_id=model_id, configured=model)


def served_model(settings) -> ServedModel:
    """The served model of these settings (a GGUF file is hashed once, then found in the registry's index)."""
    return _served(settings.model, settings.model_alias or None, settings.home)
