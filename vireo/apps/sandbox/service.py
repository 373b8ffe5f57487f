"""The sandbox service: programs run in another container, asked for over a Unix socket.

`vireo serve sandbox --socket PATH` starts `serve`; a worker with VIREO_SANDBOX=remote uses
`RemoteSandbox`. The protocol is one JSON line each way per connection:
    → {"code": str, "stdin": str, "limits": {SandboxLimits fields}}    ← {"result": {...}} or {"error": str}
    → {"ping": true}                                                   ← {"ok": true, "isolation": str}
A client that disconnects (its job was cancelled) stops its program. Inside a container, user
namespaces are usually not allowed, so the service runs programs with the rlimits runner and the
container is the outer wall; where bwrap works it uses bwrap.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
from pathlib import Path

from vireo.apps.sandbox.bwrap import BwrapSandbox, BwrapUnavailable
from vireo.apps.sandbox.process import SandboxLimits, SandboxResult
from vireo.apps.sandbox.rlimits import RlimitSandbox

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 4 * 2**20
# the most a client may ask for, whatever it sends
CEILING = SandboxLimits(
    timeout_s=120, memory_mb=4096, file_mb=256, processes=256, open_files=1024, output_bytes=16_000_000
)


class ServiceUnavailable(RuntimeError):
    """The sandbox service did not answer, or refused the request."""


class RemoteSandbox:
    """The client: sends one program to the service and waits for its result."""

    isolation = "remote"

    def __init__(self, socket: str | Path):
        self.socket = str(socket)

    async def check(self) -> None:
        await self.ping()

    async def ping(self) -> str:
        """The service's own isolation ("bwrap" or "rlimits"); raises ServiceUnavailable."""
        reply = await self._ask({"ping": True}, timeout=10)
        if not reply.get("ok"):
            raise ServiceUnavailable(f"the sandbox service at {self.socket} answered {reply!r} to a ping")
        return str(reply["isolation"])

    async def run(self, code: str, limits: SandboxLimits, stdin: str = "") -> SandboxResult:
        request = {"code": code, "stdin": stdin, "limits": dataclasses.asdict(limits)}
        reply = await self._ask(request, timeout=limits.timeout_s + 30)
        if "error" in reply:
            raise ServiceUnavailable(f"the sandbox service refused the program: {reply['error']}")
        result = SandboxResult(**reply["result"])
        result.isolation = f"remote:{result.isolation}"
        return result

    async def _ask(self, message: dict, timeout: float) -> dict:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket, limit=MAX_REQUEST_BYTES), 10
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise ServiceUnavailable(
                f"the sandbox service at {self.socket} does not answer ({exc}); start it "
                "with `vireo serve sandbox --socket PATH`"
            ) from exc
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (OSError, asyncio.TimeoutError, ValueError) as exc:
            raise ServiceUnavailable(f"the sandbox service at {self.socket} failed to answer: {exc!r}") from exc
        finally:
            writer.close()  # also what stops the program when this task is cancelled
        if not line:
            raise ServiceUnavailable(f"the sandbox service at {self.socket} closed the connection without a result")
        return json.loads(line)


async def pick_isolation(isolation: str) -> BwrapSandbox | RlimitSandbox:
    """bwrap where it works (always, for "bwrap"), else the rlimits runner inside the container."""
    if isolation in ("auto", "bwrap"):
        sandbox = BwrapSandbox()
        try:
            await sandbox.check()
            return sandbox
        except BwrapUnavailable as exc:
            if isolation == "bwrap":
                raise
            log.warning(
                "bwrap cannot run here (%s): programs run with rlimits only, so this service must run "
                "in its locked-down container (docker-compose.yml's sandbox service)",
                exc,
            )
    return RlimitSandbox(isolation="rlimits", adopt_orphans=True)


async def serve(socket_path: Path, isolation: str = "auto", concurrency: int = 4) -> None:
    """Answer run requests on `socket_path` until cancelled; `concurrency` programs at once."""
    sandbox = await pick_isolation(isolation)
    slots = asyncio.Semaphore(concurrency)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await _answer(sandbox, slots, reader)
        except Exception as exc:  # a bad request must not end the service
            log.exception("sandbox request failed")
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        if reply is not None:
            with contextlib.suppress(OSError):
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        writer.close()

    socket_path.parent.mkdir(parents=True, exist_ok=True)
    # bound and listening under another name first: once the socket's path exists, it accepts
    staging = socket_path.with_name(socket_path.name + ".starting")
    staging.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(handle, path=str(staging), limit=MAX_REQUEST_BYTES)
    os.chmod(staging, 0o660)  # the worker shares the volume, nobody else
    os.replace(staging, socket_path)
    log.warning("sandbox service on %s (isolation: %s, %d at once)", socket_path, sandbox.isolation, concurrency)
    async with server:
        await server.serve_forever()


async def _answer(sandbox, slots: asyncio.Semaphore, reader: asyncio.StreamReader) -> dict | None:
    """The reply to one request; None when the client went away (its program is then stopped)."""
    try:
        request = json.loads(await reader.readline())
    except (ValueError, asyncio.LimitOverrunError) as exc:
        return {"error": f"not a JSON line of at most {MAX_REQUEST_BYTES} bytes: {exc}"}
    if request.get("ping"):
        return {"ok": True, "isolation": sandbox.isolation}
    limits = _clamp(SandboxLimits(**request.get("limits", {})))
    async with slots:
        run = asyncio.create_task(sandbox.run(str(request["code"]), limits, str(request.get("stdin", ""))))
        gone = asyncio.create_task(reader.read(1))  # EOF: the client disconnected
        await asyncio.wait({run, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
            return None
        return {"result": run.result().to_dict()}


def _clamp(limits: SandboxLimits) -> SandboxLimits:
    return SandboxLimits(
        **{f.name: min(getattr(limits, f.name), getattr(CEILING, f.name)) for f in dataclasses.fields(SandboxLimits)}
    )
