"""The names clients use for the models this deployment serves (VIREO_MODELS or VIREO_MODEL, VIREO_MODEL_ALIAS).

A local file is configured by path, but a path is no name for clients: a GGUF file is served as
`<stem>-<sha8>` (the registry's id, which also names its converted folder), a folder by its name,
and `VIREO_MODEL_ALIAS` replaces the default model's. `/v1/models`, replies and the banner use that
name; requests may name a model by it, by the id, or by the configured value, and the default
model also as "default".
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

    is_default: bool = True

    def answers_to(self, requested: str) -> bool:
        return requested in (self.name, self.model_id, self.configured) or (self.is_default and requested == "default")


@lru_cache(maxsize=32)
def _served(model: str, alias: str | None, home: Path, is_default: bool) -> ServedModel:
    model_id = ModelRegistry(home).model_id(model)
    return ServedModel(name=alias or model_id, model_id=model_id, configured=model, is_default=is_default)


def served_model(settings, model: str | None = None) -> ServedModel:
    """How clients name `model` (default: the default model); a GGUF file is hashed once, then found in the
    registry's index."""
    model = model or settings.default_model
    is_default = model == settings.default_model
    return _served(model, (settings.model_alias or None) if is_default else None, settings.home, is_default)


def served_models(settings) -> list[ServedModel]:
    """Every served model, the default first."""
    return [served_model(settings, model) for model in settings.served_models]


def find_served(settings, requested: str) -> ServedModel | None:
    """The served model `requested` names, if any."""
    return next((served for served in served_models(settings) if served.answers_to(requested)), None)
