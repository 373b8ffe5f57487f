"""docker-compose.yml and the Dockerfile, checked without Docker: every command they run exists in the
`vireo` CLI, every file they copy exists, services wait for healthy dependencies, the home is a volume."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import typer
import yaml
from typer.core import TyperGroup

from vireo.platform.cli import app as cli_app
from vireo.platform.settings import Settings
from vireo.ui.config import UISettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VIREO_SERVICES = ("api", "worker", "ui")


def resolve_cli(argv: list[str]) -> typer.Context:
    """Parse `vireo ARGS...` the way the console script would, without running the command."""
    assert argv[0] == "vireo", f"{argv} does not start with the vireo console script"
    command = typer.main.get_command(cli_app)  # typer's own (vendored) click types
    names, args = ["vireo"], argv[1:]
    while isinstance(command, TyperGroup):
        assert args, f"{' '.join(argv)} stops at a command group"
        sub = command.get_command(typer.Context(command), args[0])
        assert sub is not None, f"`{' '.join(names)}` has no subcommand {args[0]!r}"
        command, names, args = sub, names + [args[0]], args[1:]
    return command.make_context(" ".join(names), list(args))  # raises on unknown options or bad values


def dockerfile_instructions(name: str) -> list[str]:
    """The arguments of each Dockerfile instruction `name`, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in text.splitlines() if line.upper().startswith(name + " ")]


def test_the_console_script_is_the_typer_app():
    assert PYPROJECT["project"]["scripts"]["vireo"] == "vireo.platform.cli:main"


@pytest.mark.parametrize("service", VIREO_SERVICES)
def test_each_vireo_service_command_resolves_in_the_cli(service):
    context = resolve_cli(SERVICES[service]["command"])
    assert context.info_name == f"vireo serve {service}"


def test_the_image_default_command_resolves_in_the_cli():
    (cmd,) = dockerfile_instructions("CMD")
    resolve_cli(yaml.safe_load(cmd))


def test_a_misspelled_command_is_caught():
    with pytest.raises(AssertionError):
        resolve_cli(["vireo", "serve", "apii"])
    with pytest.raises(Exception, match="No such option"):
        resolve_cli(["vireo", "serve", "api", "--no-such-option", "1"])


@pytest.mark.parametrize("service", ("api", "ui"))
def test_published_services_listen_on_all_interfaces(service):
    context = resolve_cli(SERVICES[service]["command"])
    assert context.params["host"] == "0.0.0.0"


def test_the_model_pulled_at_build_time_is_a_known_registry_name():
    from vireo.inference.registry import ModelRegistry

    pulls = [shlex.split(run) for run in dockerfile_instructions("RUN") if "models pull" in run]
    assert pulls, "the Dockerfile does not prepare the default model"
    for argv in pulls:
        context = resolve_cli(argv)
        assert context.params["name"] in ModelRegistry().known()


def test_every_file_the_dockerfile_copies_exists_and_is_not_dockerignored():
    ignored = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()
               and not p.startswith("#")]
    for copy in dockerfile_instructions("COPY"):
        *sources, _dest = copy.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is missing"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is dockerignored"


def test_the_dockerfile_installs_with_constraints_and_cpu_torch():
    assert DOCKERFILE.startswith("#") or DOCKERFILE.startswith("FROM")
    assert dockerfile_instructions("FROM") == ["python:3.11-slim"]
    installs = [run for run in dockerfile_instructions("RUN") if "pip install" in run]
    assert any("-c constraints.txt '.[ui]'" in run for run in installs)
    assert any("download.pytorch.org/whl/cpu" in run and "torch==2.13.0" in run for run in installs)
    assert "ui" in PYPROJECT["project"]["optional-dependencies"]


def test_infrastructure_services_have_healthchecks():
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert SERVICES["chroma"]["image"].startswith("chromadb/chroma")
    assert "heartbeat" in " ".join(SERVICES["chroma"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(SERVICES["api"]["healthcheck"]["test"])


@pytest.mark.parametrize("service", VIREO_SERVICES)
def test_vireo_services_wait_for_healthy_dependencies(service):
    depends = SERVICES[service]["depends_on"]
    assert depends, f"{service} depends on nothing"
    for dependency, condition in depends.items():
        assert condition == {"condition": "service_healthy"}
        assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck to wait for"


@pytest.mark.parametrize("service", ("api", "worker"))
def test_the_vireo_home_is_a_named_volume(service):
    env = SERVICES[service]["environment"]
    mounts = dict(m.split(":", 1) for m in SERVICES[service]["volumes"])
    home_volume = next(name for name, target in mounts.items() if target == env["VIREO_HOME"])
    assert home_volume in COMPOSE["volumes"]
    assert "VIREO_HOME=/data/vireo" in DOCKERFILE.replace(" ", "")  # the image pulled its model there


@pytest.mark.parametrize("service", ("api", "worker"))
def test_platform_settings_read_the_compose_environment(service, monkeypatch):
    for name, value in SERVICES[service]["environment"].items():
        monkeypatch.setenv(name, str(value))
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.chroma_url == "http://chroma:8000"
    assert str(settings.home) == "/data/vireo"
    assert settings.api_key


def test_the_ui_reads_the_api_address_from_the_compose_environment(monkeypatch):
    for name, value in SERVICES["ui"]["environment"].items():
        monkeypatch.setenv(name, str(value))
    assert UISettings(_env_file=None).api_url == "http://api:8000"


SANDBOX = SERVICES["sandbox"]


def test_the_sandbox_service_command_resolves_in_the_cli():
    assert resolve_cli(SANDBOX["command"]).info_name == "vireo serve sandbox"


def test_the_sandbox_container_is_locked_down():
    assert SANDBOX["network_mode"] == "none"
    assert SANDBOX["read_only"] is True
    assert SANDBOX["cap_drop"] == ["ALL"] and not SANDBOX.get("cap_add") and not SANDBOX.get("privileged")
    assert "no-new-privileges:true" in SANDBOX["security_opt"]
    user = str(SANDBOX["user"]).split(":")
    assert user[0] not in ("", "0", "root") and user[-1] not in ("", "0", "root")
    assert 0 < int(SANDBOX["pids_limit"]) <= 1024
    assert SANDBOX["mem_limit"]
    assert "/tmp" in [entry.split(":")[0] for entry in SANDBOX["tmpfs"]]


def test_the_sandbox_holds_nothing_worth_stealing():
    assert not SANDBOX.get("environment"), "no keys, no Redis address in the sandbox"
    assert not SANDBOX.get("ports") and "<<" not in SANDBOX
    socket_dir = str(Path(resolve_cli(SANDBOX["command"]).params["socket"]).parent)
    assert [m.split(":")[1] for m in SANDBOX["volumes"]] == [socket_dir], "only the socket's volume is mounted"


def test_the_worker_runs_code_in_the_sandbox_through_a_shared_socket(monkeypatch):
    socket = Path(resolve_cli(SANDBOX["command"]).params["socket"])
    worker = SERVICES["worker"]
    for name, value in worker["environment"].items():
        monkeypatch.setenv(name, str(value))
    settings = Settings(_env_file=None)
    assert settings.sandbox == "remote" and settings.sandbox_socket == socket
    volume = {target: name for name, target in (m.split(":", 1) for m in SANDBOX["volumes"])}[str(socket.parent)]
    assert f"{volume}:{socket.parent}" in worker["volumes"] and volume in COMPOSE["volumes"]
    assert worker["depends_on"]["sandbox"] == {"condition": "service_healthy"}
    assert str(socket) in " ".join(SANDBOX["healthcheck"]["test"])


def test_the_image_has_bubblewrap_and_the_socket_folder_belongs_to_the_sandbox_user():
    runs = dockerfile_instructions("RUN")
    assert any("apt-get install" in run and "bubblewrap" in run for run in runs)
    socket_dir = str(Path(resolve_cli(SANDBOX["command"]).params["socket"]).parent)
    owner = str(SANDBOX["user"])
    assert any(f"chown {owner} {socket_dir}" in run for run in runs)
