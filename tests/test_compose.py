"""docker-compose.yml and the Dockerfile, checked without Docker: every command they run exists in the
`vireo` CLI, every file they copy exists, services wait for healthy dependencies, the home is a volume,
the defaults are safe (the API key required, readiness that needs a worker, a worker healthcheck, no
root). The `gpu` and `vllm` profiles (issue #16) are checked against the settings object: every VIREO_*
variable a service sets is a real setting, and lands where intended (the GPU worker's engine on CUDA, the
vLLM worker on the openai backend at the vLLM service). This machine has no Docker engine: these are
checks of the files as compose and Docker read them."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import typer
import yaml
from typer.core import TyperGroup

from vireo.cli import app as cli_app
from vireo.inference.api import EngineError
from vireo.inference.engine_config import EngineConfig
from vireo.platform.engine_env import engine_variable_names
from vireo.platform.settings import Settings
from vireo.ui.config import UISettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VIREO_SERVICES = ("api", "worker", "ui")
WORKERS = ("worker", "worker-gpu", "worker-vllm")  # the default CPU worker, then one per profile
DEFAULT_SERVICES = {"redis", "chroma", "api", "worker", "sandbox", "ui"}  # plain `docker compose up`
PROFILES = {"gpu": {"worker-gpu"}, "vllm": {"vllm", "worker-vllm"}}
CONSTRAINTS = (ROOT / "constraints.txt").read_text()
API_KEY = {"VIREO_API_KEY": "a-long-random-secret"}


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


def service_settings(service: str, monkeypatch, env: dict[str, str] | None = None) -> Settings:
    """The platform settings a service's process reads, from its compose environment alone."""
    for name in [n for n in os.environ if n.startswith("VIREO_") or n == "REDIS_URL"]:
        monkeypatch.delenv(name)
    for name, value in compose_environment(service, {**API_KEY, **(env or {})}).items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


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


@pytest.mark.parametrize("service", WORKERS)
def test_every_worker_runs_vireo_serve_worker(service):
    assert resolve_cli(SERVICES[service]["command"]).info_name == "vireo serve worker"


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


def dockerfile_stages() -> dict[str, str]:
    """Each `FROM image AS stage` of the Dockerfile: stage → what it starts from."""
    stages = {}
    for line in dockerfile_instructions("FROM"):
        image, _as, stage = line.split()
        assert _as.upper() == "AS", line
        stages[stage] = image
    return stages


def dockerfile_stage_text(stage: str) -> str:
    """The instructions of one stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    return re.split(r"^FROM ", text.split(f" AS {stage}\n", 1)[1], maxsplit=1, flags=re.M)[0]


def test_the_dockerfile_installs_with_constraints_and_cpu_torch_by_default():
    assert DOCKERFILE.startswith("#") or DOCKERFILE.startswith("FROM")
    stages = dockerfile_stages()
    assert stages["base"] == "python:3.11-slim"
    assert re.search(r"^ARG DEVICE=cpu$", DOCKERFILE, re.M), "a plain `docker build .` builds the CPU image"
    assert stages["base-cpu"] == stages["base-cuda"] == "base"
    assert list(stages)[-1] == "vireo" and stages["vireo"] == "base-${DEVICE}", "the last stage is the image"
    installs = [run for run in dockerfile_instructions("RUN") if "pip install" in run]
    assert any("-c /tmp/constraints.txt '.[ui]'" in run and "constraints.txt >" in run for run in installs)
    assert any('--index-url "$TORCH_INDEX" torch==2.13.0' in run for run in installs)
    assert "TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile_stage_text("base-cpu")
    assert "ui" in PYPROJECT["project"]["optional-dependencies"]
    assert "\ntorch==2.13.0\n" in CONSTRAINTS, "the Dockerfile's torch is the constraints' torch"


def test_the_cuda_build_installs_cuda_torch_and_a_compiler_for_triton():
    cuda = dockerfile_stage_text("base-cuda")
    index = re.search(r"TORCH_INDEX=(\S+)", cuda).group(1)
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu1\d\d", index), index
    assert "apt-get install" in cuda and "gcc" in cuda and "libc6-dev" in cuda
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in cuda


def test_infrastructure_services_have_healthchecks():
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert SERVICES["chroma"]["image"].startswith("chromadb/chroma")
    assert "heartbeat" in " ".join(SERVICES["chroma"]["healthcheck"]["test"])


@pytest.mark.parametrize("service", (*VIREO_SERVICES, *WORKERS))
def test_vireo_services_wait_for_healthy_dependencies(service):
    depends = SERVICES[service]["depends_on"]
    assert depends, f"{service} depends on nothing"
    for dependency, condition in depends.items():
        assert condition == {"condition": "service_healthy"}
        assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck to wait for"


@pytest.mark.parametrize("service", ("api", *WORKERS))
def test_the_vireo_home_is_a_named_volume(service):
    env = SERVICES[service]["environment"]
    mounts = dict(m.split(":", 1) for m in SERVICES[service]["volumes"])
    home_volume = next(name for name, target in mounts.items() if target == env["VIREO_HOME"])
    assert home_volume in COMPOSE["volumes"]
    assert "VIREO_HOME=/data/vireo" in DOCKERFILE.replace(" ", "")  # the image pulled its model there


@pytest.mark.parametrize("service", ("api", *WORKERS))
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


@pytest.mark.parametrize("service", ("api", *WORKERS))
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


@pytest.mark.parametrize("service", WORKERS)
def test_the_worker_has_a_healthcheck_of_its_own_heartbeat(service):
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert resolve_cli(check["test"][1:]).info_name == "vireo worker-health"
    assert check["start_period"], "the worker loads its model before its first heartbeat"


def test_every_vireo_process_logs_json_lines():
    for service in (*VIREO_SERVICES, *WORKERS, "sandbox"):
        assert SERVICES[service]["environment"]["VIREO_LOG_FORMAT"] == "json", service
        assert interpolated(SERVICES[service]["environment"]["VIREO_LOG_LEVEL"], {}) == "info"


def test_no_container_runs_as_root():
    users = [user.strip() for user in dockerfile_instructions("USER")]
    assert users and users[-1] == "vireo", "the image's last USER is its unprivileged user"
    runs = " ".join(dockerfile_instructions("RUN"))
    created = re.search(r"useradd --uid (\d+) [^&]*\bvireo\b", runs)
    assert created and int(created.group(1)) != 0
    for service in (*VIREO_SERVICES, *WORKERS, "sandbox"):
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


@pytest.mark.parametrize("service", WORKERS)
def test_the_worker_runs_code_in_the_sandbox_through_a_shared_socket(service, monkeypatch):
    socket = Path(resolve_cli(SANDBOX["command"]).params["socket"])
    worker = SERVICES[service]
    for name, value in compose_environment(service, {"VIREO_API_KEY": "a-long-random-secret"}).items():
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


# --- the profiles (issue #16): plain `docker compose up` stays the CPU stack ------------------------------


def profiles_of(service: str) -> list[str]:
    return SERVICES[service].get("profiles") or []


def nvidia_devices(service: str) -> list[dict]:
    reservations = SERVICES[service].get("deploy", {}).get("resources", {}).get("reservations", {})
    return reservations.get("devices", [])


def known_variables() -> set[str]:
    """Every VIREO_* name the platform's and the UI's settings read (both ignore unknown names: a typo
    would be dropped without a word, so the compose file is checked against this list)."""
    names = {variable.upper() for variable in engine_variable_names().values()}
    for settings_class in (Settings, UISettings):
        for field_name, field in settings_class.model_fields.items():
            names.add(f"VIREO_{field_name}".upper())
            alias = field.validation_alias
            names.update(str(choice).upper() for choice in getattr(alias, "choices", [alias] if alias else []))
    return names


def unknown_variables(environment: dict) -> list[str]:
    known = known_variables()
    unknown = []
    for name in environment:
        if not name.startswith("VIREO_") or name in known:
            continue
        nested = name.removeprefix("VIREO_ENGINE__").lower()
        if name.startswith("VIREO_ENGINE__") and nested in EngineConfig.model_fields:
            continue
        unknown.append(name)
    return unknown


def test_plain_compose_up_is_the_cpu_stack_it_always_was():
    assert {name for name in SERVICES if not profiles_of(name)} == DEFAULT_SERVICES
    for name in DEFAULT_SERVICES:
        assert not nvidia_devices(name), f"{name} asks for a GPU"
        assert "container_name" not in SERVICES[name]
        if name in (*VIREO_SERVICES, "sandbox"):
            assert SERVICES[name]["build"] == "." and SERVICES[name]["image"] == "vireo:latest"  # DEVICE=cpu
            assert not {"VIREO_DEVICE", "VIREO_ENGINE"} & set(SERVICES[name]["environment"])


@pytest.mark.parametrize("service", ("api", "worker"))
def test_the_default_stack_serves_the_default_model_on_the_cpu_image(service, monkeypatch):
    settings = service_settings(service, monkeypatch).for_worker()
    assert settings.served_models == ["smollm2-135m"] and settings.model == "smollm2-135m"
    assert settings.engine.backend == "native" and settings.engine.device == "auto"  # CPU: torch sees no GPU
    assert settings.queue == Settings(_env_file=None).queue


def test_each_profile_adds_its_own_services_and_nothing_else():
    found: dict[str, set[str]] = {}
    for name in SERVICES:
        for profile in profiles_of(name):
            found.setdefault(profile, set()).add(name)
    assert found == PROFILES


@pytest.mark.parametrize("service", [name for name in SERVICES if isinstance(SERVICES[name].get("environment"), dict)])
def test_every_vireo_variable_a_service_sets_is_a_real_setting(service):
    assert not unknown_variables(SERVICES[service]["environment"]), f"{service} sets variables nothing reads"


def test_a_misspelled_variable_is_caught():
    assert unknown_variables({"VIREO_DEVISE": "cuda", "VIREO_ENGINE__DEVICE": "cuda", "HF_TOKEN": ""}) == [
        "VIREO_DEVISE"
    ]


@pytest.mark.parametrize("service", WORKERS)
def test_workers_scale_and_serve_a_model_of_the_pool(service, monkeypatch):
    worker = SERVICES[service]
    assert "container_name" not in worker and not worker.get("ports"), "`--scale` needs no fixed name or port"
    settings = service_settings(service, monkeypatch)
    api = service_settings("api", monkeypatch)
    assert settings.served_models == api.served_models, "the api and the worker know the same pool"
    own = settings.for_worker()
    assert own.model in api.served_models and own.queue == api.queue_for(own.model)
    if own.model != api.default_model:
        assert "VIREO_WORKER_MODEL" in worker["environment"], f"{service} serves a non-default model"


def test_the_pool_comes_from_the_environment_alike_for_the_api_and_every_worker(monkeypatch):
    env = {"VIREO_MODELS": "smollm2-135m,/models/coder", "VIREO_APP_MODELS": "code:/models/coder"}
    for service in ("api", *WORKERS):
        settings = service_settings(service, monkeypatch, env)
        assert settings.served_models == ["smollm2-135m", "/models/coder"], service
        assert settings.apps_default_models() == {"code": "/models/coder"}, service


def test_the_gpu_worker_builds_the_cuda_image_and_reserves_an_nvidia_gpu():
    worker = SERVICES["worker-gpu"]
    assert worker["build"] == {"context": ".", "args": {"DEVICE": "cuda"}}
    assert "base-cuda" in dockerfile_stages()
    assert worker["image"] == "vireo:cuda", "its own tag: the CPU services keep vireo:latest"
    (device,) = nvidia_devices("worker-gpu")
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] >= 1


def test_the_gpu_worker_runs_the_native_engine_on_cuda_by_settings_alone(monkeypatch):
    engine = service_settings("worker-gpu", monkeypatch).for_worker().engine
    assert engine.backend == "native" and engine.device == "cuda" and engine.dtype == "auto"
    assert engine.cuda_graphs is True and engine.overlap_decode is True and engine.dense_gemv is True
    assert engine.quantization == "none" and engine.kv_cache_memory_fraction == 0.8 and engine.max_batch == 64
    assert service_settings("worker-gpu", monkeypatch, {"VIREO_QUANTIZATION": "int4"}).engine.quantization == "int4"

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on the GPU host
    resolved = engine.resolved()
    assert (resolved.device, resolved.dtype, resolved.overlap_decode) == ("cuda", "bfloat16", True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the GPU not passed through: fail, loudly
    with pytest.raises(EngineError, match="VIREO_DEVICE=cuda"):
        engine.resolved()


def test_the_vllm_service_is_vllms_own_server_of_the_constraints_version():
    vllm = SERVICES["vllm"]
    pinned = re.search(r"^vllm(?:-cpu)?==(\d+\.\d+)\.", CONSTRAINTS, re.M).group(1)
    image, tag = vllm["image"].split(":")
    assert image == "vllm/vllm-openai" and re.fullmatch(rf"v{re.escape(pinned)}\.\d+", tag), vllm["image"]
    assert vllm["entrypoint"] == ["vllm", "serve"]
    (device,) = nvidia_devices("vllm")
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert not vllm.get("ports"), "only the worker reaches vLLM"
    assert "/health" in " ".join(vllm["healthcheck"]["test"]) and vllm["healthcheck"]["start_period"]


def vllm_command(env: dict[str, str]) -> dict[str, str]:
    """vLLM's arguments as compose resolves them: the model, then each --option's value."""
    args = [interpolated(arg, env) for arg in SERVICES["vllm"]["command"]]
    options = dict(zip(args[1::2], args[2::2]))
    assert all(name.startswith("--") for name in options), args
    return {"model": args[0], **options}


@pytest.mark.parametrize("env", [{}, {"VIREO_MODEL": "qwen2.5-7b", "VLLM_MODEL": "Qwen/Qwen2.5-7B-Instruct"}])
def test_the_vllm_worker_sends_the_default_models_jobs_to_the_vllm_server(env, monkeypatch):
    settings = service_settings("worker-vllm", monkeypatch, env).for_worker()
    engine, command = settings.engine, vllm_command(env)
    assert engine.backend == "openai"
    assert engine.openai_base_url == f"http://vllm:{command['--port']}/v1"
    assert engine.openai_model == command["--served-model-name"] == settings.default_model == engine.model
    assert command["model"] == env.get("VLLM_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert command["--host"] == "0.0.0.0" and int(command["--max-model-len"]) >= 2048
    assert settings.queue == service_settings("api", monkeypatch, env).queue_for(settings.model)
    assert SERVICES["worker-vllm"]["depends_on"]["vllm"] == {"condition": "service_healthy"}
    assert SERVICES["worker-vllm"]["image"] == "vireo:latest", "HTTP calls only: the CPU image"
