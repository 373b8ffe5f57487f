"""`VIREO_API_WORKERS`: `vireo serve api` runs that many uvicorn processes, each building the app from the
environment (uvicorn's factory form); one process keeps the app built here."""

import pytest
import uvicorn

from vireo.platform import cli, logs
from vireo.platform.settings import Settings, get_settings


@pytest.fixture
def calls(monkeypatch):
    seen: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.append((args, kwargs)))
    monkeypatch.setattr(logs, "configure_logging", lambda *args: None)  # keep pytest's own logging
    yield seen
    get_settings.cache_clear()


def test_several_workers_build_the_app_in_each_process(monkeypatch, calls):
    monkeypatch.setenv("VIREO_API_WORKERS", "3")
    get_settings.cache_clear()
    cli.serve_api(host="127.0.0.1", port=8123)
    ((args, kwargs),) = calls
    assert args == ("vireo.platform.api.app:create_app",)
    assert kwargs["factory"] is True and kwargs["workers"] == 3 and kwargs["port"] == 8123


def test_one_worker_runs_the_app_built_here(monkeypatch, calls):
    monkeypatch.delenv("VIREO_API_WORKERS", raising=False)
    get_settings.cache_clear()
    cli.serve_api(host="127.0.0.1", port=8124)
    ((args, kwargs),) = calls
    assert not isinstance(args[0], str) and "workers" not in kwargs


def test_zero_workers_is_refused():
    with pytest.raises(ValueError, match="api_workers"):
        Settings(api_workers=0)
