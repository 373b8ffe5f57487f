"""The UI's settings: where the REST API lives and the key to call it with (`VIREO_*` variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class UISettings(BaseSettings):
    """Read once per session; the sidebar may override the key."""

    model_config = SettingsConfigDict(env_prefix="VIREO_", env_file=".env", extra="ignore")

    api_url: str = "http://127.0.0.1:8000"
    api_key: str = ""
    # how long an event stream may stay silent before the page refreshes itself (and notices clicks)
    idle_refresh_s: float = 1.0
    # list diagnostics apps (echo) in the menu from the start (VIREO_SHOW_DIAGNOSTICS)
    show_diagnostics: bool = False
    # where the UI keeps what it keeps (chat conversations, per API key): VIREO_UI_HOME
    ui_home: Path = Path.home() / ".cache" / "vireo" / "ui"
