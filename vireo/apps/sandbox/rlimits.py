"""Programs as plain child processes with rlimits, a fresh temp dir and a process-group kill.

No namespaces: the program sees what its user may see. This is the runner of the sandbox service
inside its locked-down container (the container is the outer wall: no network, read-only root,
non-root user, no capabilities, a pids limit), and of `unsafe-local` mode, which an operator must
choose by name. In the service, orphans (a double-forked or setsid child whose parent exited)
are adopted by the server (a child subreaper) and killed when a run ends.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import tempfile
from pathlib import Path

from vireo.apps.sandbox.bwrap import base_python
from vireo.apps.sandbox.process import (
    PROGRAM,
    SandboxLimits,
    SandboxResult,
    kill_group,
    python_command,
    start,
    supervise,
)

PR_SET_CHILD_SUBREAPER = 36


class RlimitSandbox:
    """`isolation` names the mode in results: "rlimits" in the service, "unsafe-local" in a worker."""

    def __init__(self, isolation: str = "rlimits", python: str | None = None, adopt_orphans: bool = False):
        self.isolation = isolation
        self.python = python or base_python()
        self.adopt_orphans = adopt_orphans
        self._running: set[int] = set()
        self._spawning = asyncio.Lock()
        if adopt_orphans:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    async def check(self) -> None:
        """Nothing to probe: a child process can always be started."""

    async def run(self, code: str, limits: SandboxLimits, stdin: str = "") -> SandboxResult:
        with tempfile.TemporaryDirectory(prefix="vireo-sandbox-") as tmp:
            (Path(tmp) / PROGRAM).write_text(code, encoding="utf-8")
            # RLIMIT_NPROC counts every process of this user, so the program's share comes on top
            argv = python_command(self.python, limits, extra_processes=_tasks_of(os.getuid()))
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp}
            async with self._spawning:  # a sweep must never see a program it has not registered yet
                run = await start(argv, stdin, limits, cwd=tmp, env=env)
                self._running.add(run.proc.pid)
            try:
                return await supervise(run, limits, self.isolation, kill=self._kill)
            finally:
                self._running.discard(run.proc.pid)
                if self.adopt_orphans:
                    await self._sweep()

    def _kill(self, proc: subprocess.Popen) -> None:
        kill_group(proc.pid)
        if self.adopt_orphans:
            kill_orphans(keep=self._running)

    async def _sweep(self) -> None:
        """Kill adopted orphans until none is left (a killed parent's children arrive a moment later)."""
        for _ in range(40):
            await asyncio.sleep(0.025)
            async with self._spawning:
                if not kill_orphans(keep=self._running):
                    return


def kill_orphans(keep: set[int]) -> int:
    """SIGKILL and reap the children of this process that it did not start (adopted orphans)."""
    found = 0
    for pid in _children():
        if pid in keep:
            continue
        found += 1
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    return found


def _children() -> list[int]:
    me, children = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                    children.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return children


def _tasks_of(uid: int) -> int:
    """Processes and threads `uid` has now (what RLIMIT_NPROC counts against the limit)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += int((entry / "stat").read_text().rsplit(")", 1)[1].split()[17])
            except (OSError, ValueError, IndexError):
                continue
    return count
