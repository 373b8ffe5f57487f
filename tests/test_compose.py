"""docker-compose.yml and the Dockerfile, checked without Docker: every command they run exists in the
`vireo` CLI, every file they copy exists, services wait for healthy dependencies, the home is a volume,
the defaults are safe (the API key required, readiness that needs a worker, a worker healthcheck, no
root). This machine has no Docker engine: these are checks of the files as compose and Docker read them."""

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

from vireo.cli import app as cli_app
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


def interpolated(value, env: dict[str, str]) -> str:
    """A compose value with `${VAR}`, `${VAR:-default}` and `${VAR:?error}` resolved as `docker compose`
    resolves them from `env` (the error is raised, as compose refuses to start)."""

    def resolve(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise ValueError(f"{name}: {argument}")
        return argument or ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", resolve, str(value))


def compose_environment(service: str, env: dict[str, str]) -> dict[str, str]:
    return {name: interpolated(value, env) for name, value in SERVICES[service]["environment"].items()}


def dockerfile_instructions(name: str) -> list[str]:
    """The arguments of each Dockerfile instruction `name`, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in text.splitlines() if line.upper().startswith(name + " ")]


def test_the_console_script_is_the_typer_app():
    assert PYPROJECT["project"]["scripts"]["vireo"] == "vireo.cli:main"


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
    ignored = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
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
    for name, value in compose_environment(service, {"VIREO_API_KEY": "a-long-random-secret"}).items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.chroma_url == "http://chroma:8000"
    assert str(settings.home) == "/data/vireo"
    assert settings.api_key == "a-long-random-secret"
    assert settings.log_format == "json" and settings.log_level == "info"


def test_the_ui_reads_the_api_address_from_the_compose_environment(monkeypatch):
    for name, value in compose_environment("ui", {}).items():
        monkeypatch.setenv(name, value)
    assert UISettings(_env_file=None).api_url == "http://api:8000"


@pytest.mark.parametrize("service", ("api", "worker"))
def test_compose_refuses_to_start_without_an_api_key(service):
    raw = SERVICES[service]["environment"]["VIREO_API_KEY"]
    assert re.fullmatch(r"\$\{VIREO_API_KEY:\?[^}]+\}", raw), f"VIREO_API_KEY falls back to something: {raw}"
    with pytest.raises(ValueError, match="VIREO_API_KEY"):
        compose_environment(service, {})
    assert "change-me" not in (ROOT / "docker-compose.yml").read_text()


def test_the_published_ui_does_not_hand_out_the_admin_key():
    assert compose_environment("ui", {"VIREO_API_KEY": "the-admin-key"})["VIREO_API_KEY"] == ""


def test_the_api_is_healthy_only_when_a_worker_serves_its_model():
    from vireo.platform.api.app import create_app

    probe = " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert "/readyz" in probe and "raise_for_status" in probe
    assert "/readyz" in {route.path for route in create_app(Settings(_env_file=None)).routes}
    assert SERVICES["ui"]["depends_on"]["api"] == {"condition": "service_healthy"}


def test_the_worker_has_a_healthcheck_of_its_own_heartbeat():
    check = SERVICES["worker"]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert resolve_cli(check["test"][1:]).info_name == "vireo worker-health"
    assert check["start_period"], "the worker loads its model before its first heartbeat"


def test_every_vireo_process_logs_json_lines():
    for service in (*VIREO_SERVICES, "sandbox"):
        assert SERVICES[service]["environment"]["VIREO_LOG_FORMAT"] == "json", service
        assert interpolated(SERVICES[service]["environment"]["VIREO_LOG_LEVEL"], {}) == "info"


def test_no_container_runs_as_root():
    users = [user.strip() for user in dockerfile_instructions("USER")]
    assert users and users[-1] == "vireo", "the image's last USER is its unprivileged user"
    runs = " ".join(dockerfile_instructions("RUN"))
    created = re.search(r"useradd --uid (\d+) [^&]*\bvireo\b", runs)
    assert created and int(created.group(1)) != 0
    for service in (*VIREO_SERVICES, "sandbox"):
        user = str(SERVICES[service].get("user", "vireo")).split(":")[0]
        assert user not in ("", "0", "root"), f"{service} runs as root"


def test_the_vireo_user_owns_the_home_and_may_reach_the_sandbox_socket_only():
    runs = dockerfile_instructions("RUN")
    assert any("chown vireo:vireo /data/vireo" in run for run in runs)
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    assert text.index("USER vireo") < text.index("vireo models pull"), "the model is pulled as vireo"
    sandbox_gid = str(SANDBOX["user"]).split(":")[1]
    assert any(f"groupadd --gid {sandbox_gid} sandbox" in run and "--groups sandbox" in run for run in runs)


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
    assert set(SANDBOX.get("environment") or {}) <= {"VIREO_LOG_FORMAT", "VIREO_LOG_LEVEL"}, (
        "no keys, no Redis address in the sandbox: only how to log"
    )
    assert not SANDBOX.get("ports") and "<<" not in SANDBOX
    socket_dir = str(Path(resolve_cli(SANDBOX["command"]).params["socket"]).parent)
    assert [m.split(":")[1] for m in SANDBOX["volumes"]] == [socket_dir], "only the socket's volume is mounted"


def test_the_worker_runs_code_in_the_sandbox_through_a_shared_socket(monkeypatch):
    socket = Path(resolve_cli(SANDBOX["command"]).params["socket"])
    worker = SERVICES["worker"]
    for name, value in compose_environment("worker", {"VIREO_API_KEY": "a-long-random-secret"}).items():
        monkeypatch.setenv(name, value)
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
