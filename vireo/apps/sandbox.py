"""Run untrusted Python in a child process with no network, a private temp dir and hard limits.

Layers, outermost first: a fresh network namespace (`unshare -n`, when this host allows it); the
base interpreter with `-I -S` (no site-packages, no user env, never the worker's venv); a clean
environment and a temp dir as cwd; rlimits on CPU, memory, file size and core dumps set before any
user code runs; and an audit hook that refuses sockets, subprocesses, ctypes and file access
outside the temp dir (reads of the standard library excepted). It stops accidents and naive
escapes; for hostile code put the worker itself in a container as well.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

OUTPUT_LIMIT = 8_000  # characters of stdout/stderr kept

_GUARD = r'''
import os, resource, sys
_cfg = __CONFIG__
for _name, _value in (("RLIMIT_CPU", _cfg["cpu_s"]), ("RLIMIT_AS", _cfg["memory_bytes"]),
                      ("RLIMIT_FSIZE", _cfg["file_bytes"]), ("RLIMIT_CORE", 0)):
    resource.setrlimit(getattr(resource, _name), (_value, _value))
_home = os.path.realpath(_cfg["workdir"])
_readable = tuple(os.path.realpath(p) for p in _cfg["readable"])
_blocked_events = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                   "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                   "socket.__new__", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                   "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg", "ctypes.dlopen",
                   "ctypes.dlsym", "ctypes.cdata", "os.chroot"}
_write_events = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
                 "os.chmod", "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "os.chdir",
                 "shutil.copyfile", "shutil.move"}
_list_events = {"os.listdir", "os.scandir"}
_write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(path, roots):
    try:
        real = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else "")
    except Exception:
        return False
    return any(real == r or real.startswith(r + os.sep) for r in roots)

def _guard(event, args):
    if event in _blocked_events:
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open" and args and not isinstance(args[0], int):
        mode, flags = (list(args[1:3]) + [None, None])[:2]
        writing = any(c in str(mode) for c in "wax+") if mode else bool((flags or 0) & _write_flags)
        if not _inside(args[0], (_home,) if writing else (_home,) + _readable):
            raise PermissionError(f"sandbox: access to {os.fsdecode(args[0])!r} is not allowed")
    elif event in _write_events or event in _list_events:
        roots = (_home,) if event in _write_events else (_home,) + _readable
        paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        if not all(_inside(a, roots) for a in paths):
            raise PermissionError(f"sandbox: {event} outside the working directory is not allowed")
    elif event == "import" and args and str(args[0]).split(".")[0] in ("ctypes", "_ctypes"):
        raise PermissionError("sandbox: ctypes is not allowed")

sys.addaudithook(_guard)
del _guard, _name, _value
_source = open("solution.py", encoding="utf-8").read()
exec(compile(_source, "solution.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
'''


@dataclass
class SandboxLimits:
    """What the child may use; wall time is enforced from outside, the rest by rlimits."""

    timeout_s: float = 10.0
    memory_mb: int = 512
    file_mb: int = 16


@dataclass
class SandboxResult:
    """How a sandboxed run ended; `passed` means exit code 0 within the time limit."""

    passed: bool
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    network_isolated: bool

    def to_dict(self) -> dict:
        return asdict(self)


def base_python() -> str:
    """The interpreter the venv was made from, so the child never sees the venv's packages."""
    return getattr(sys, "_base_executable", None) or sys.executable


@functools.lru_cache(maxsize=1)
def network_unshare_prefix() -> tuple[str, ...]:
    """`unshare` arguments that give the child an empty network namespace, or () if not allowed."""
    binary = shutil.which("unshare")
    if binary is None:
        return ()
    for prefix in ((binary, "-n"), (binary, "-r", "-n")):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=5).returncode == 0:
                return prefix
        except (OSError, subprocess.SubprocessError):
            continue
    return ()


def _readable_roots() -> list[str]:
    """The standard library (imports must read it) and nothing else outside the temp dir."""
    paths = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix})
    return sorted({paths["stdlib"], paths["platstdlib"], "/dev/null", "/dev/urandom"})


def _write_program(workdir: Path, code: str, limits: SandboxLimits) -> Path:
    config = {"cpu_s": max(1, int(limits.timeout_s) + 1), "memory_bytes": limits.memory_mb * 2**20,
              "file_bytes": limits.file_mb * 2**20, "workdir": str(workdir), "readable": _readable_roots()}
    (workdir / "solution.py").write_text(code, encoding="utf-8")
    guard = workdir / "_guard.py"
    guard.write_text(_GUARD.replace("__CONFIG__", json.dumps(config)), encoding="utf-8")
    return guard


def _clip(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + "\n... [output truncated]"


async def run_python(code: str, limits: SandboxLimits | None = None, stdin: str = "") -> SandboxResult:
    """Run `code` as a script in the sandbox and report exit status and output."""
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="vireo-sandbox-") as tmp:
        workdir = Path(tmp)
        guard = _write_program(workdir, code, limits)
        prefix = network_unshare_prefix()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp}
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *prefix, base_python(), "-I", "-S", "-B", str(guard), cwd=tmp, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)  # its own process group, so a timeout kills every descendant
        timed_out = False
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), limits.timeout_s)
        except asyncio.TimeoutError:
            timed_out = True
            _kill_group(proc.pid)
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            raise
        code_ = proc.returncode
        return SandboxResult(passed=code_ == 0 and not timed_out, exit_code=code_, stdout=_clip(out),
                             stderr=_clip(err), timed_out=timed_out,
                             duration_s=round(time.monotonic() - started, 3), network_isolated=bool(prefix))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
