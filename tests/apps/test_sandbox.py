"""The code sandbox: no network, no files outside its temp dir, no worker packages, hard time limit."""

from __future__ import annotations

from vireo.apps.sandbox import SandboxLimits, network_unshare_prefix, run_python


async def test_ordinary_code_runs_and_can_use_its_own_directory():
    result = await run_python("import json, math\nopen('out.txt', 'w').write('ok')\n"
                              "print(json.dumps(math.isqrt(49)), open('out.txt').read())")
    assert result.passed and result.stdout.strip() == "7 ok"


async def test_network_is_blocked():
    result = await run_python("import socket\ns = socket.socket()\ns.settimeout(3)\ns.connect(('1.1.1.1', 80))\n"
                              "print('connected')")
    assert not result.passed
    assert "connected" not in result.stdout
    assert result.network_isolated == bool(network_unshare_prefix())


async def test_reading_files_outside_the_sandbox_is_blocked():
    result = await run_python("print(open('/etc/hostname').read())")
    assert not result.passed and "not allowed" in result.stderr


async def test_writing_outside_the_sandbox_is_blocked(tmp_path):
    target = tmp_path / "escaped.txt"
    result = await run_python(f"open({str(target)!r}, 'w').write('x')")
    assert not result.passed
    assert not target.exists()


async def test_relative_paths_cannot_climb_out():
    result = await run_python("import os\nprint(os.listdir('../..'))")
    assert not result.passed and "not allowed" in result.stderr


async def test_the_workers_packages_are_not_importable():
    result = await run_python("import pydantic")
    assert not result.passed and "ModuleNotFoundError" in result.stderr


async def test_subprocesses_are_blocked():
    result = await run_python("import subprocess\nsubprocess.run(['true'])")
    assert not result.passed and "not allowed" in result.stderr


async def test_the_time_limit_is_enforced():
    result = await run_python("while True:\n    pass", SandboxLimits(timeout_s=1.5))
    assert result.timed_out and not result.passed


async def test_the_memory_limit_is_enforced():
    result = await run_python("block = bytearray(1024 ** 3)", SandboxLimits(memory_mb=256))
    assert not result.passed and "MemoryError" in result.stderr
