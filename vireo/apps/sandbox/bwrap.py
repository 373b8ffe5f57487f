"""The bubblewrap sandbox: each program in new user, PID, mount, network, IPC and UTS namespaces.

What the program sees: the system's shared libraries (read-only), one Python interpreter and its
standard library at /opt/python (read-only, site-packages hidden), a /proc of its own PID namespace,
a minimal /dev, and a size-capped tmpfs at /tmp as its home and working directory. Nothing else:
no /etc (but the loader's cache), no /home, no /root, no Vireo home, no Redis data, no venv.
It runs as uid/gid 65534 inside, with no capabilities, new user namespaces disabled, a seccomp
filter (`seccomp.py`) and rlimits (`process.py`). When the worker is root, bwrap itself is started
as uid 65534 too, so the whole tree is an unprivileged user on the host as well (and RLIMIT_NPROC,
which the kernel never applies to root, holds). Killing bwrap's namespace init kills every process
of the run, however it forked or called setsid.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vireo.apps.sandbox.process import (
    PROGRAM,
    SandboxLimits,
    SandboxResult,
    kill_group,
    python_command,
    start,
    supervise,
)
from vireo.apps.sandbox.seccomp import SeccompUnavailable, filter_program

NOBODY = 65534
INNER_PREFIX = "/opt/python"
WORKDIR = "/tmp"
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


class BwrapUnavailable(RuntimeError):
    """bubblewrap cannot run a program on this host; the message says why and what to do."""


@dataclass(frozen=True)
class Interpreter:
    """The pieces of a Python installation the sandbox binds in (host paths)."""

    executable: str
    stdlib: str
    version: str  # "3.11"
    libpython: str | None  # the shared libpython, when the interpreter links one

    @classmethod
    def describe(cls, python: str) -> "Interpreter":
        """Ask the interpreter where its parts are (it may be another Python than the worker's)."""
        script = (
            "import json, sys, sysconfig, os\n"
            "lib = os.path.join(sysconfig.get_config_var('LIBDIR') or '',"
            " sysconfig.get_config_var('LDLIBRARY') or '')\n"
            "shared = sysconfig.get_config_var('Py_ENABLE_SHARED') and os.path.isfile(lib)\n"
            "print(json.dumps({'executable': os.path.realpath(sys.executable),"
            " 'stdlib': sysconfig.get_paths()['stdlib'], 'version': '%d.%d' % sys.version_info[:2],"
            " 'libpython': os.path.realpath(lib) if shared else None}))"
        )
        try:
            out = subprocess.run(
                [python, "-I", "-S", "-c", script],
                capture_output=True,
                text=True,
                timeout=30,
                env={"PATH": "/usr/bin:/bin"},
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise BwrapUnavailable(f"cannot run the interpreter {python}: {exc}") from exc
        return cls(**json.loads(out))

    def paths(self) -> list[str]:
        return [p for p in (self.executable, self.stdlib, self.libpython) if p]


def _world_readable(path: str) -> bool:
    """Whether any user may reach `path` (every parent searchable, the path itself readable)."""
    try:
        parts = Path(path).resolve().parts
        for depth in range(1, len(parts)):
            if not os.stat(Path(*parts[:depth])).st_mode & stat.S_IXOTH:
                return False
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


class BwrapSandbox:
    """Runs each program under `bwrap`; `check()` says once whether this host can."""

    isolation = "bwrap"

    def __init__(self, python: str | None = None, bwrap: str | None = None):
        self.python = python
        self.bwrap = bwrap or shutil.which("bwrap") or "/usr/bin/bwrap"
        self.host_uid = NOBODY if os.geteuid() == 0 else None  # bwrap as nobody when we are root
        # setpriv, not Popen(user=...): changing ids in the child makes Python fork() instead of vfork(),
        # which costs ~0.1 s per GB of a worker that holds a model
        self.launcher = (
            [
                shutil.which("setpriv") or "/usr/bin/setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "--",
            ]
            if self.host_uid is not None
            else []
        )
        self._probed = False
        self._unavailable: BwrapUnavailable | None = None

    async def check(self) -> None:
        """Raise BwrapUnavailable unless a trivial program runs in the full sandbox (tried once; the
        outcome is kept as a value, not a future, so any event loop may ask)."""
        if not self._probed:
            try:
                await self._probe()
            except BwrapUnavailable as exc:
                self._unavailable = exc
            self._probed = True
        if self._unavailable is not None:
            raise self._unavailable

    async def _probe(self) -> None:
        if not os.access(self.bwrap, os.X_OK):
            raise BwrapUnavailable(f"bubblewrap is not installed ({self.bwrap} missing): apt-get install bubblewrap")
        if self.launcher and not os.access(self.launcher[0], os.X_OK):
            raise BwrapUnavailable(
                f"{self.launcher[0]} is missing (Debian package util-linux): it starts bwrap "
                f"as uid {NOBODY} when the worker runs as root"
            )
        try:
            filter_program()
        except SeccompUnavailable as exc:
            raise BwrapUnavailable(str(exc)) from exc
        self.interpreter = await asyncio.to_thread(self._pick_interpreter)
        result = await self._run("print('ok')", SandboxLimits(timeout_s=30), "")
        if not result.passed or result.stdout.strip() != "ok":
            raise BwrapUnavailable(
                f"bubblewrap cannot start a sandbox here (exit {result.exit_code}): "
                f"{(result.stderr or result.stdout).strip()[-500:]}"
            )

    def _pick_interpreter(self) -> Interpreter:
        """The configured Python, else the worker's own base interpreter, else the system's python3;
        the first whose files the sandbox user can read."""
        candidates = [self.python] if self.python else [base_python(), *SYSTEM_PYTHONS]
        tried = []
        for python in candidates:
            if not os.path.exists(python):
                continue
            interpreter = Interpreter.describe(python)
            if self.host_uid is None or all(_world_readable(p) for p in interpreter.paths()):
                return interpreter
            tried.append(python)
        raise BwrapUnavailable(
            f"no Python interpreter the sandbox user (uid {self.host_uid}) can read: tried "
            f"{', '.join(tried) or 'none found'}; install Debian's python3 or set "
            "VIREO_SANDBOX_PYTHON to an interpreter outside private directories"
        )

    async def run(self, code: str, limits: SandboxLimits, stdin: str = "") -> SandboxResult:
        await self.check()
        return await self._run(code, limits, stdin)

    async def _run(self, code: str, limits: SandboxLimits, stdin: str) -> SandboxResult:
        program = _memfd("vireo-program", code.encode())
        rules = _memfd("vireo-seccomp", filter_program())
        info_read, info_write = os.pipe()
        os.set_blocking(info_read, False)
        fds = [program, rules, info_write]
        argv = [
            *self.launcher,
            self.bwrap,
            *self.arguments(limits, program=program, rules=rules, info=info_write),
            "--",
            *python_command(f"{INNER_PREFIX}/bin/python3", limits),
        ]
        try:  # bwrap's own environment holds nothing of ours: its init's /proc/1/environ is visible inside
            run = await start(argv, stdin, limits, pass_fds=fds, env={"PATH": "/usr/bin:/bin"})
            return await supervise(run, limits, self.isolation, kill=_NamespaceKiller(info_read))
        finally:
            for fd in (*fds, info_read):
                _close(fd)

    def arguments(self, limits: SandboxLimits, program: int, rules: int, info: int) -> list[str]:
        """bwrap's options: namespaces, the filesystem view, the environment, seccomp."""
        py = self.interpreter
        inner_stdlib = f"{INNER_PREFIX}/lib/python{py.version}"
        tmp_bytes = str(4 * limits.file_mb * 2**20)
        args = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--uid",
            str(NOBODY),
            "--gid",
            str(NOBODY),
            "--hostname",
            "sandbox",
        ]
        args += _system_libraries()
        args += ["--ro-bind", py.executable, f"{INNER_PREFIX}/bin/python3", "--ro-bind", py.stdlib, inner_stdlib]
        if os.path.isdir(os.path.join(py.stdlib, "site-packages")):
            args += ["--tmpfs", f"{inner_stdlib}/site-packages", "--remount-ro", f"{inner_stdlib}/site-packages"]
        if py.libpython:
            args += ["--ro-bind", py.libpython, f"{INNER_PREFIX}/lib/{os.path.basename(py.libpython)}"]
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            tmp_bytes,
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--size",
            tmp_bytes,
            "--tmpfs",
            WORKDIR,
            "--ro-bind-data",
            str(program),
            f"{WORKDIR}/{PROGRAM}",
            "--remount-ro",
            "/",
            "--chdir",
            WORKDIR,
            "--clearenv",
            "--setenv",
            "HOME",
            WORKDIR,
            "--setenv",
            "TMPDIR",
            WORKDIR,
            "--setenv",
            "PATH",
            f"{INNER_PREFIX}/bin",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--seccomp",
            str(rules),
            "--info-fd",
            str(info),
        ]
        if py.libpython:
            args += ["--setenv", "LD_LIBRARY_PATH", f"{INNER_PREFIX}/lib"]
        return args


@functools.lru_cache(maxsize=1)
def _system_libraries() -> list[str]:
    """/usr/lib (and lib64/lib32), with /lib* as the host has them (merged-/usr symlinks or dirs)."""
    args = []
    for path in ("/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.isdir(path) and not os.path.islink(path):
            args += ["--ro-bind", path, path]
    for path in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def base_python() -> str:
    """The interpreter the worker's venv was made from (never the venv itself)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)  # close-on-exec; pass_fds hands it to bwrap alone
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _NamespaceKiller:
    """SIGKILL the PID namespace's init (the kernel then kills everything in it), then bwrap's group."""

    def __init__(self, info_fd: int):
        self.info_fd = info_fd
        self.init_pid: int | None = None

    def __call__(self, proc: subprocess.Popen) -> None:
        if self.init_pid is None:
            self.init_pid = _namespace_init(self.info_fd)
        # bwrap (not yet reaped by us) is the init's parent: checking that rules out a reused pid
        if self.init_pid is not None and _parent_of(self.init_pid) == proc.pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_group(proc.pid)


def _namespace_init(info_fd: int) -> int | None:
    """The host pid of the PID namespace's init, from bwrap's --info-fd JSON (None if not there yet)."""
    try:
        return int(json.loads(os.read(info_fd, 65536))["child-pid"])
    except (OSError, ValueError, KeyError):
        return None


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
