"""The Redis that `make run` uses keeps its data: its own redis-server writes an AOF under the Vireo home,
and a Redis that keeps nothing is not used silently. Real redis-server processes, no mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis
import yaml

from tests.conftest import ROOT, free_port
from vireo.platform.launcher import (
    choose_redis,
    durability_notes,
    embedded_redis_command,
    redis_keeps,
    start_embedded_redis,
)
from vireo.platform.processes import start, stop, wait_until
from vireo.platform.settings import Settings

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
# these start redis-server processes of their own; without redis-server they fail (.ci/run installs it)
needs_redis_server = pytest.mark.stack


@pytest.fixture
def forgetful_redis(tmp_path):
    """A redis-server configured like a cache: no AOF, no snapshots (as CI's and many dev Redis are)."""
    port = free_port()
    proc = start(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        quiet=True,
    )
    wait_until(redis.Redis(port=port).ping, 10, "the forgetful redis-server", proc)
    yield f"redis://127.0.0.1:{port}/0"
    stop([proc])


def test_the_embedded_command_appends_every_write_under_the_given_folder(tmp_path):
    command = embedded_redis_command("/usr/bin/redis-server", 7000, tmp_path)
    flags = dict(zip(command[1::2], command[2::2]))
    assert flags["--appendonly"] == "yes" and flags["--appendfsync"] == "everysec"
    assert flags["--dir"] == str(tmp_path) and flags["--bind"] == "127.0.0.1"


def test_compose_redis_runs_with_aof_on_its_volume():
    redis_service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]
    command = redis_service["command"]
    flags = dict(zip(command[1::2], command[2::2]))
    assert flags["--appendonly"] == "yes" and flags["--appendfsync"] == "everysec"
    assert any(volume.endswith(":" + flags["--dir"]) for volume in redis_service["volumes"])


@needs_redis_server
def test_a_key_written_before_a_restart_is_there_after_it(tmp_path):
    data = tmp_path / "home" / "redis"
    url, proc = start_embedded_redis(data)
    try:
        client = redis.Redis.from_url(url)
        client.set("vireo:test:kept", "yes")
        assert redis_keeps(url) == "aof"
    finally:
        stop([proc])  # SIGTERM: redis-server flushes its AOF and exits
    assert any(data.joinpath("appendonlydir").iterdir()), "no AOF was written"
    url, proc = start_embedded_redis(data)
    try:
        assert redis.Redis.from_url(url).get("vireo:test:kept") == b"yes"
    finally:
        stop([proc])
    assert oct(data.stat().st_mode & 0o777) == oct(0o700)


@needs_redis_server
def test_a_second_server_on_the_same_folder_is_refused(tmp_path):
    url, proc = start_embedded_redis(tmp_path / "redis")
    try:
        with pytest.raises(SystemExit, match="already uses"):
            start_embedded_redis(tmp_path / "redis")
    finally:
        stop([proc])


@needs_redis_server
def test_a_redis_that_keeps_nothing_is_named_and_the_fix_given(forgetful_redis):
    assert redis_keeps(forgetful_redis) == "nothing"
    notes = " ".join(durability_notes(forgetful_redis))
    assert "will NOT survive a Redis restart" in notes and "CONFIG SET appendonly yes" in notes


@needs_redis_server
def test_make_run_prefers_its_own_durable_redis_to_one_that_keeps_nothing(forgetful_redis, tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("VIREO_REDIS_URL", raising=False)
    choice = choose_redis(Settings(home=tmp_path), local_url=forgetful_redis)
    try:
        assert choice.proc is not None and choice.url != forgetful_redis
        assert redis_keeps(choice.url) == "aof"
        assert "keeps nothing" in choice.notes[0] and any(choice.url in note for note in choice.notes)
        assert Path(redis.Redis.from_url(choice.url).config_get("dir")["dir"]) == tmp_path / "redis"
    finally:
        stop([choice.proc])


@needs_redis_server
def test_with_nothing_on_the_usual_port_its_own_redis_takes_that_port(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("VIREO_REDIS_URL", raising=False)
    port = free_port()
    choice = choose_redis(Settings(home=tmp_path), local_url=f"redis://127.0.0.1:{port}/0")
    try:
        assert choice.url == f"redis://127.0.0.1:{port}/0" and choice.notes == []
        assert redis_keeps(choice.url) == "aof"
    finally:
        stop([choice.proc])


@needs_redis_server
def test_an_explicit_redis_url_is_used_with_a_plain_warning(forgetful_redis, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", forgetful_redis)
    choice = choose_redis(Settings(home=tmp_path))
    assert choice.url == forgetful_redis and choice.proc is None
    assert choice.notes[0].startswith("WARNING") and "will NOT survive a Redis restart" in choice.notes[0]
