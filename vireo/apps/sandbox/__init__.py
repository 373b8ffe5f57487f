"""Run untrusted Python where it cannot reach the worker: `run_python(code, limits, stdin)`.

The walls are outside the interpreter, so nothing the code does to itself switches them off:
- `bwrap` (default where it works, `bwrap.py`): the program runs in new user, PID, mount, network,
  IPC and UTS namespaces as an unprivileged user, sees a minimal read-only filesystem and a
  private tmpfs, under a seccomp filter and rlimits; its PID namespace is killed at the deadline.
- `remote` (`service.py`): the program runs in the sandbox service, a separate locked-down
  container reached over a Unix socket (docker-compose's `sandbox` service).
- `unsafe-local` (`rlimits.py`): a plain child process with rlimits; only for an operator who
  chose it by name, for code they trust.
`auto` picks bwrap, else the configured service, else refuses to run code (SandboxUnavailable).
The platform chooses the mode from its settings through `configure_sandbox`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from vireo.apps.sandbox.bwrap import BwrapSandbox, BwrapUnavailable
from vireo.apps.sandbox.process import SandboxLimits, SandboxResult
from vireo.apps.sandbox.rlimits import RlimitSandbox
from vireo.apps.sandbox.service import RemoteSandbox, ServiceUnavailable

__all__ = ["SandboxLimits", "SandboxResult", "SandboxUnavailable", "configure_sandbox", "run_python", "current_sandbox"]

Mode = Literal["auto", "bwrap", "remote", "unsafe-local"]
HOW_TO_FIX = (
    "install bubblewrap (apt-get install bubblewrap) where the worker runs, or run the sandbox "
    "service and set VIREO_SANDBOX=remote with VIREO_SANDBOX_SOCKET (docker-compose does this)"
)


class SandboxUnavailable(RuntimeError):
    """No real sandbox can run code here; the message says why and how to fix it."""


class Sandbox(Protocol):
    isolation: str

    async def check(self) -> None: ...

    async def run(self, code: str, limits: SandboxLimits, stdin: str = "") -> SandboxResult: ...


class _Choice:
    """The configured mode, resolved to one sandbox on first use."""

    def __init__(
        self, mode: Mode = "auto", socket: str | Path | None = None, python: str | None = None, bwrap: str | None = None
    ):
        if mode not in ("auto", "bwrap", "remote", "unsafe-local"):
            raise ValueError(f"unknown sandbox mode {mode!r}: use auto, bwrap, remote or unsafe-local")
        self.mode, self.socket, self.python = mode, socket, python
        self.bwrap = BwrapSandbox(python=python, bwrap=bwrap)
        self.chosen: Sandbox | None = None

    async def resolve(self) -> Sandbox:
        if self.chosen is None:
            self.chosen = await self._pick()
        return self.chosen

    async def _pick(self) -> Sandbox:
        if self.mode == "unsafe-local":
            return RlimitSandbox(isolation="unsafe-local", python=self.python)
        if self.mode == "remote" or (self.mode == "auto" and self.socket and not await self._bwrap_works()):
            if not self.socket:
                raise SandboxUnavailable(
                    "VIREO_SANDBOX=remote needs VIREO_SANDBOX_SOCKET, the sandbox service's "
                    "Unix socket (vireo serve sandbox --socket PATH)"
                )
            return RemoteSandbox(self.socket)
        try:
            await self.bwrap.check()
        except BwrapUnavailable as exc:
            raise SandboxUnavailable(
                f"cannot run code: no sandbox is available ({exc}). To fix: {HOW_TO_FIX}. "
                "VIREO_SANDBOX=unsafe-local runs code without one, for trusted code only"
            ) from exc
        return self.bwrap

    async def _bwrap_works(self) -> bool:
        try:
            await self.bwrap.check()
            return True
        except BwrapUnavailable:
            return False


_choice = _Choice()


def configure_sandbox(
    mode: Mode = "auto", socket: str | Path | None = None, python: str | None = None, bwrap: str | None = None
) -> None:
    """Set the process-wide sandbox (the platform calls this with its settings at start).

    `socket`: the sandbox service's (remote, or auto's fallback); `python`: the interpreter programs
    run with; `bwrap`: the bubblewrap binary (default: found on PATH)."""
    global _choice
    _choice = _Choice(mode, socket, python, bwrap)


async def current_sandbox() -> Sandbox:
    """The sandbox `run_python` uses; raises SandboxUnavailable when there is none."""
    return await _choice.resolve()


async def run_python(code: str, limits: SandboxLimits | None = None, stdin: str = "") -> SandboxResult:
    """Run `code` as a script in the sandbox and report exit status and output."""
    sandbox = await current_sandbox()
    try:
        return await sandbox.run(code, limits or SandboxLimits(), stdin)
    except ServiceUnavailable as exc:
        raise SandboxUnavailable(f"cannot run code: {exc}") from exc
