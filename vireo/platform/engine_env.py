"""Where `Settings.engine` comes from in the environment: each engine field `x` from `VIREO_X`, the
names users have always set (VIREO_MODEL, VIREO_DTYPE, VIREO_MAX_BATCH, ...), with `VIREO_ENGINE`
naming the backend as before; `VIREO_ENGINE__X` (pydantic-settings' nested form) wins over both.

The field list is the engine config's own, so a new engine field is a new variable with no copying.
"""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import DotEnvSettingsSource, EnvSettingsSource

from vireo.inference.engine_config import EngineConfig

ENGINE_FIELD = "engine"
RENAMED = {"backend": "engine"}  # VIREO_ENGINE=native|vllm|hf|openai, as documented since the start
DERIVED = {"home"}  # Settings.home, one variable for the whole platform


def engine_variable_names() -> dict[str, str]:
    """Engine field → its flat variable (lower case, as the sources normalise names)."""
    return {name: "vireo_" + RENAMED.get(name, name) for name in EngineConfig.model_fields if name not in DERIVED}


class _EngineVariables:
    """Builds the `engine` field from flat variables plus the nested ones; the raw VIREO_ENGINE value
    is the backend's name, never the engine as JSON."""

    env_vars: Any

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        if field_name != ENGINE_FIELD:
            return super().prepare_field_value(field_name, field, value, value_is_complex)  # type: ignore[misc]
        flat = {
            name: self.env_vars[variable]
            for name, variable in engine_variable_names().items()
            if self.env_vars.get(variable) not in (None, "")
        }
        nested = self.explode_env_vars(field_name, field, self.env_vars)  # type: ignore[attr-defined]
        return {**flat, **nested} or None


class EngineEnvSource(_EngineVariables, EnvSettingsSource):
    """The process environment."""


class EngineDotEnvSource(_EngineVariables, DotEnvSettingsSource):
    """The `.env` file."""


def with_engine_variables(settings_cls, dotenv_settings: DotEnvSettingsSource) -> tuple:
    """The environment and `.env` sources of `settings_cls`, reading the engine as above (the `.env`
    file the caller chose, e.g. `Settings(_env_file=...)`, kept)."""
    return (
        EngineEnvSource(settings_cls),
        EngineDotEnvSource(
            settings_cls, env_file=dotenv_settings.env_file, env_file_encoding=dotenv_settings.env_file_encoding
        ),
    )
