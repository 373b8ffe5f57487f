"""Escape attempts on the code sandbox: every attack in the catalogue must fail.

The catalogue (vireo/tools/drills/sandbox_attacks.py) is shared with the `sandbox_escapes` drill. Each
attack is a real program run through `run_python` with bubblewrap, aimed at a secret planted outside
(files standing in for Redis's AOF and the API key file, a bystander process's environment, this
process's environment), at this process and a bystander (signals), and at the host (survivors,
memory, network). The sandbox service gets the attacks its own isolation is meant to stop.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from vireo.apps.sandbox import configure_sandbox, run_python
from vireo.tools.drills.sandbox_attacks import ATTACKS, Attack, LocalTarget, attempt

pytestmark = pytest.mark.stack  # runs each attack under bubblewrap, and in the sandbox service

ROOT = Path(__file__).resolve().parents[2]
BY_NAME = {attack.name: attack for attack in ATTACKS}


@pytest.fixture(scope="module")
def target():
    with LocalTarget() as planted:
        yield planted


@pytest.fixture
def bwrap_mode():
    configure_sandbox("bwrap")
    yield
    configure_sandbox()


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_the_attack_fails(attack, target, bwrap_mode):
    result = await attempt(attack, target)
    assert result.isolation == "bwrap"
    assert attack.failure(result, target) is None, result.stdout[-2000:] + result.stderr[-2000:]


async def test_huge_output_does_not_grow_the_worker(bwrap_mode):
    Path("/proc/self/clear_refs").write_text("5")  # reset this process's peak RSS (VmHWM)
    before = _status_kb("VmRSS")
    result = await run_python(
        "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    )
    assert result.output_limited and len(result.stdout) < 10_000
    assert _status_kb("VmHWM") - before < 64 * 1024, "reading the output raised the worker's peak memory by 64 MB"


def _start_service(socket: Path, isolation: str) -> subprocess.Popen:
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
            isolation,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not socket.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert socket.exists(), f"the sandbox service did not start (exit {proc.poll()})"
    return proc


@pytest.fixture(scope="module", params=["bwrap", "rlimits"])
def service(request, tmp_path_factory):
    """The sandbox service in each isolation it has: bwrap where user namespaces work, rlimits in its
    container (whose walls are not here: this machine has no Docker)."""
    socket = tmp_path_factory.mktemp("sandbox-service") / "sandbox.sock"
    proc = _start_service(socket, request.param)
    yield request.param, socket
    proc.terminate()
    proc.wait(10)


SERVICE_ATTACKS = {
    "bwrap": (
        "read_secret_files",
        "environ_peek",
        "signal_the_worker",
        "fork_bomb",
        "setsid_survivor",
        "orphan_after_exit",
        "huge_output",
    ),
    # what the rlimits runner stops by itself; the rest is its container's job
    "rlimits": ("setsid_survivor", "orphan_after_exit", "huge_output"),
}


async def test_the_attacks_fail_in_the_service(service, target):
    isolation, socket = service
    configure_sandbox("remote", socket=socket)
    try:
        for name in SERVICE_ATTACKS[isolation]:
            result = await attempt(BY_NAME[name], target)
            assert result.isolation == f"remote:{isolation}"
            failure = BY_NAME[name].failure(result, target)
            assert failure is None, f"{name}: {failure}\n{result.stdout[-1500:]}{result.stderr[-1500:]}"
    finally:
        configure_sandbox()


def _status_kb(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])


def test_the_catalogue_is_complete():
    """The attacks the issue lists are all there (a drill that lost one would still pass)."""
    assert {
        "audit_hook_off",
        "read_system_files",
        "read_secret_files",
        "environ_peek",
        "list_private_dirs",
        "signal_the_worker",
        "kill_everything",
        "fork_bomb",
        "setsid_survivor",
        "huge_output",
        "network",
        "write_outside",
        "ptrace",
        "namespaces_and_mounts",
    } <= set(BY_NAME)


async def test_hazardous_attacks_are_refused_without_a_pid_namespace(target):
    """Outside bwrap, `kill -9 -1` as root ends every process of the machine: the harness refuses.
    (A harmless program stands in for the hazardous one, so nothing is at risk if the refusal fails.)"""
    harmless = Attack("stand_in", "print", "print('ran')", hazardous=True)
    configure_sandbox("unsafe-local")
    try:
        with pytest.raises(RuntimeError, match="refusing to run 'stand_in' without bwrap"):
            await attempt(harmless, target)
    finally:
        configure_sandbox()
