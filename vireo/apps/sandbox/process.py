"""One sandboxed program as a child process: rlimits set before its code runs, stdin from a file,
output read up to a cap, and a kill at the deadline. Every isolation (bwrap, the rlimits runner of
the sandbox service) runs its command through `start` and `supervise`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Callable

OUTPUT_LIMIT = 8_000  # characters of stdout/stderr kept in the result
PROGRAM = "solution.py"


@dataclass
class SandboxLimits:
    """What one run may use. Wall time is enforced from outside; the rest are rlimits."""

    timeout_s: float = 10.0
    memory_mb: int = 512  # address space of each process
    file_mb: int = 16  # largest file it may write
    processes: int = 16  # processes and threads at once (fork bombs; with memory_mb, a memory bound)
    open_files: int = 256
    output_bytes: int = 1_000_000  # stdout + stderr read before the program is stopped

    def rlimits(self, extra_processes: int = 0) -> list[tuple[str, int]]:
        """(resource name, hard = soft value) pairs; CPU time is a second past the wall limit."""
        return [
            ("RLIMIT_CPU", max(1, int(self.timeout_s) + 1)),
            ("RLIMIT_AS", self.memory_mb * 2**20),
            ("RLIMIT_FSIZE", self.file_mb * 2**20),
            ("RLIMIT_NOFILE", self.open_files),
            ("RLIMIT_CORE", 0),
            ("RLIMIT_NPROC", self.processes + extra_processes),
        ]


@dataclass
class SandboxResult:
    """How a run ended; `passed` means exit code 0 within the time limit and the output cap."""

    passed: bool
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    isolation: str  # "bwrap", "remote:bwrap", "remote:rlimits" or "unsafe-local"
    output_limited: bool = False  # it wrote more than `output_bytes` and was stopped

    def to_dict(self) -> dict:
        return asdict(self)


def python_command(python: str, limits: SandboxLimits, extra_processes: int = 0) -> list[str]:
    """The interpreter's argv that lowers its rlimits, then runs `solution.py` from the cwd.

    -I -S: no site-packages, no user directories, no PYTHON* variables. The limits are hard limits,
    so the program cannot raise them again; they hold for every process it starts.
    """
    bootstrap = (
        "import resource, sys\n"
        f"for name, value in {limits.rlimits(extra_processes)!r}:\n"
        "    resource.setrlimit(getattr(resource, name), (value, value))\n"
        f"sys.argv = [{PROGRAM!r}]\n"
        f"source = open({PROGRAM!r}, encoding='utf-8').read()\n"
        f"exec(compile(source, {PROGRAM!r}, 'exec'), "
        f"{{'__name__': '__main__', '__file__': {PROGRAM!r}, '__builtins__': __builtins__}})\n"
    )
    return [python, "-I", "-S", "-B", "-X", "utf8", "-c", bootstrap]


class _Capture(asyncio.Protocol):
    """One output pipe: every byte counts against the run's budget; the first few KB are kept.

    Reading never pauses, so a writer is never left blocked on a full pipe; past the budget the
    program is stopped and what it still writes is counted and dropped.
    """

    KEEP = OUTPUT_LIMIT * 4 + 4  # enough bytes for OUTPUT_LIMIT characters of UTF-8

    def __init__(self, budget: "_Budget"):
        self.budget = budget
        self.kept = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if len(self.kept) < self.KEEP:
            self.kept += data[: self.KEEP - len(self.kept)]
        self.budget.spend(len(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Budget:
    def __init__(self, limit: int):
        self.limit, self.seen = limit, 0
        self.exceeded = asyncio.Event()

    def spend(self, n: int) -> None:
        self.seen += n
        if self.seen > self.limit:
            self.exceeded.set()


@dataclass
class Started:
    """A running program, a pidfd that becomes readable when it exits, and its stdout and stderr."""

    proc: subprocess.Popen
    pidfd: int
    budget: _Budget
    outputs: list[tuple[asyncio.ReadTransport, _Capture]]


async def start(argv: list[str], stdin: str, limits: SandboxLimits, **options) -> Started:
    """Start `argv` in its own session and process group; stdin comes from a file, so feeding it
    never blocks, and stdout/stderr are pipes read as they fill.

    A plain Popen (vfork: a millisecond even in a worker holding GBs) and a pidfd for its exit: no
    watcher thread to wake, which on a busy machine is what asyncio's subprocesses wait for most.
    """
    loop = asyncio.get_running_loop()
    stdin_file = os.memfd_create("vireo-stdin")
    os.write(stdin_file, stdin.encode())
    os.lseek(stdin_file, 0, os.SEEK_SET)
    (out_read, out_write), (err_read, err_write) = os.pipe(), os.pipe()
    try:
        proc = subprocess.Popen(
            argv, stdin=stdin_file, stdout=out_write, stderr=err_write, start_new_session=True, **options
        )
    except BaseException:
        for fd in (out_read, err_read):
            os.close(fd)
        raise
    finally:
        for fd in (stdin_file, out_write, err_write):
            os.close(fd)
    pidfd = os.pidfd_open(proc.pid)  # not reaped before proc.wait(), so the pid is still this process
    budget = _Budget(limits.output_bytes)
    outputs = []
    for fd in (out_read, err_read):
        outputs.append(await loop.connect_read_pipe(lambda: _Capture(budget), os.fdopen(fd, "rb", buffering=0)))
    return Started(proc, pidfd, budget, outputs)


async def supervise(
    run: Started, limits: SandboxLimits, isolation: str, kill: Callable[[subprocess.Popen], None]
) -> SandboxResult:
    """Wait for a started program's end, its deadline or its output cap, then kill what is left.

    `kill` must stop every process of the run (a PID namespace, a process group and its strays);
    it is called on timeout, on the output cap, on cancellation and after a normal exit.
    """
    began = time.monotonic()
    proc, budget = run.proc, run.budget
    exited = asyncio.create_task(_readable(run.pidfd))
    capped = asyncio.create_task(budget.exceeded.wait())
    try:
        await asyncio.wait({exited, capped}, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        timed_out = not exited.done() and not budget.exceeded.is_set()
        kill(proc)
        await exited
        kill(proc)  # strays of a normal exit too
        # every writer is gone now, unless a stray escaped the kill: then do not wait for it
        await asyncio.wait([capture.closed for _, capture in run.outputs], timeout=1.0)
    finally:
        kill(proc)
        capped.cancel()
        exited.cancel()
        for transport, _ in run.outputs:
            transport.close()
        proc.wait()  # killed or exited: reaping it does not block
        os.close(run.pidfd)
    (_, out), (_, err) = run.outputs
    stderr = _text(bytes(err.kept))
    if budget.exceeded.is_set():
        stderr += f"\n[sandbox: the program wrote more than {limits.output_bytes} bytes and was stopped]"
    elif timed_out:
        stderr += f"\n[sandbox: stopped at the {limits.timeout_s:g} s time limit]"
    code = proc.returncode
    return SandboxResult(
        passed=code == 0 and not timed_out and not budget.exceeded.is_set(),
        exit_code=code,
        stdout=_text(bytes(out.kept)),
        stderr=stderr,
        timed_out=timed_out,
        duration_s=round(time.monotonic() - began, 3),
        isolation=isolation,
        output_limited=budget.exceeded.is_set(),
    )


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _text(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + "\n... [output truncated]"


def kill_group(pgid: int) -> None:
    """SIGKILL a process group; gone already is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
