"""A local engine in a process of its own: the Engine API here, the engine's steps there.

A worker's process runs the apps, the job events' Redis writes and Celery's threads. With the engine's
step thread in the same interpreter they take turns at the GIL: on an H100 the worker topped out near
3,000 tok/s while the same engine alone made 5,500 (benchmarks/results/gpu/platform-h100-2026-12-05.json).
`EngineProcess` builds the engine (`create_engine` of the same settings) in a spawned child, as vLLM
v1 runs its engine core, and talks to it over one `multiprocessing` pipe: requests, aborts and calls
go there; token events come back a batch per turn of the child's event loop (one per engine step).
The model's tokenizer is loaded here too, so rendering a chat or counting a prompt's tokens never
waits on the child. If the child dies, every waiting caller gets an `EngineError` and `on_lost` is
told first (the worker exits then, so the reaper re-runs its jobs elsewhere).

Messages (tuples, pickled by the pipe):
  here → child   ("generate", id, GenerationRequest) · ("abort", id) · ("close", id) (nobody listens
                 any more) · ("call", n, method, args) · ("shutdown",)
  child → here   ("ready", EngineInfo) or ("failed", error) once; ("events", [(id, event or error)], stats);
                 ("reply", n, ok, value)
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from vireo.inference.api import Engine, EngineError, EngineEvent, EngineStats, Finished, GenerationRequest
from vireo.inference.engine_config import EngineConfig
from vireo.inference.prompt_text import PromptText

log = logging.getLogger(__name__)

STATS_EVERY_S = 0.25  # the child sends a stats snapshot at least this often while it works (and when idle)
CALLS = frozenset({"score", "sequence_logprobs", "embed"})  # the async calls answered by the child


@dataclass
class EngineInfo:
    """What the child tells once its engine is loaded."""

    backend: str
    model_name: str
    model_path: Path
    context_length: int
    accepts_images: bool
    config: EngineConfig  # resolved for the child's machine
    stats: EngineStats
    pid: int


def portable(error: BaseException) -> BaseException:
    """`error` if it survives pickling (the API's errors do), else an EngineError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return EngineError(f"{type(error).__name__}: {error}")


class EngineProcess(Engine):
    """The Engine API of a native or hf engine that runs in a child process."""

    def __init__(
        self,
        config: EngineConfig,
        on_lost: Callable[[str], None] | None = None,
        initializer: Callable[[], None] | None = None,
    ):
        self.config = config
        self.backend = config.backend
        self.model_name = config.model
        self.on_lost = on_lost  # called (on the reader thread) before callers learn that the child died
        self.child_initializer = initializer  # run first in the child (the worker's logging); must pickle
        self._process: Any = None
        self._conn: Any = None
        self._send_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._streams: dict[str, asyncio.Queue] = {}
        self._calls: dict[int, asyncio.Future] = {}
        self._next_call = 0
        self._lost: str | None = None  # why the child is gone, once it is
        self._closing = False
        self.text: PromptText | None = None
        self._stats = EngineStats(config.backend, config.model)

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._process is not None:
            return
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked; neither can our threads
        here, there = context.Pipe()
        child_config = self.config.model_copy(update={"own_process": False})
        self._process = context.Process(
            target=serve_engine,
            args=(child_config, there, self.child_initializer),
            name=f"vireo-engine-{self.config.model}",
            # ended with this process (the child also ends when the pipe closes); a tensor-parallel
            # engine starts processes of its own ranks, which a daemon process may not
            daemon=self.config.tensor_parallel_size == 1,
        )
        self._process.start()
        there.close()
        self._conn = here
        try:
            kind, payload = await asyncio.to_thread(here.recv)
        except EOFError:
            await asyncio.to_thread(self._process.join, 5)
            raise EngineError(
                f"the engine process for {self.config.model} exited with code {self._process.exitcode} while loading"
            ) from None
        if kind == "failed":
            await asyncio.to_thread(self._process.join, 5)
            raise payload
        info: EngineInfo = payload
        self.backend, self.model_name = info.backend, info.model_name
        self.context_length, self.accepts_images = info.context_length, info.accepts_images
        self.config, self._stats = info.config, info.stats
        self.text = await asyncio.to_thread(PromptText.load, info.model_path, info.model_name)
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, name="vireo-engine-reader", daemon=True).start()
        log.info("engine process %d serves %s/%s", info.pid, info.backend, info.model_name)

    async def shutdown(self) -> None:
        if self._process is None or self._closing:
            return
        self._closing = True
        if self._lost is None:
            try:
                self._send(("shutdown",))
            except EngineError:
                pass
        await asyncio.to_thread(self._process.join, 30)
        if self._process.is_alive():
            self._process.kill()
            await asyncio.to_thread(self._process.join, 5)
        self._conn.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # --- the pipe ---------------------------------------------------------------------------------
    def _send(self, message: tuple) -> None:
        if self._lost is not None:
            raise EngineError(self._lost)
        if self._conn is None:
            raise EngineError("the engine process is not started (await engine.start() first)")
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, EOFError) as exc:  # the child is gone: the reader thread reports it
            raise EngineError(f"the engine process for {self.model_name} is gone ({exc})") from None

    def _read(self) -> None:
        """The reader thread: every message from the child, handed to the caller's loop."""
        assert self._loop is not None
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                break
            try:
                self._loop.call_soon_threadsafe(self._dispatch, message)
            except RuntimeError:  # the caller's loop is closed: nobody to tell
                return
        if self._closing:
            return
        self._process.join(2)  # its exit code, for the message
        reason = f"the engine process for {self.model_name} exited (code {self._process.exitcode})"
        log.error("%s", reason)
        if self.on_lost is not None:
            self.on_lost(reason)
        try:
            self._loop.call_soon_threadsafe(self._fail_all, reason)
        except RuntimeError:
            pass

    def _dispatch(self, message: tuple) -> None:
        kind = message[0]
        if kind == "events":
            _, events, stats = message
            for request_id, event in events:
                queue = self._streams.get(request_id)
                if queue is not None:  # (events after the caller stopped listening are dropped)
                    queue.put_nowait(event)
            if stats is not None:
                self._stats = stats
        elif kind == "reply":
            _, number, ok, value = message
            future = self._calls.pop(number, None)
            if future is not None and not future.done():
                future.set_result(value) if ok else future.set_exception(value)

    def _fail_all(self, reason: str) -> None:
        self._lost = reason
        for queue in self._streams.values():
            queue.put_nowait(EngineError(reason))
        for future in self._calls.values():
            if not future.done():
                future.set_exception(EngineError(reason))
        self._calls.clear()

    async def _call(self, method: str, *args) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._next_call += 1
        self._calls[self._next_call] = future
        self._send(("call", self._next_call, method, args))
        return await future

    # --- Engine API -------------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        request_id = request.request_id
        if request_id in self._streams:
            raise EngineError(f"request {request_id} is already running")
        queue: asyncio.Queue = asyncio.Queue()
        self._streams[request_id] = queue
        finished = False
        try:
            self._send(("generate", request_id, request))
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    finished = True  # (the child ended it: nothing to close there)
                    raise event
                yield event
                if isinstance(event, Finished):
                    finished = True
                    return
        finally:
            self._streams.pop(request_id, None)
            if not finished and self._lost is None and not self._closing:
                self._send(("close", request_id))  # the caller stopped listening: abort it there

    async def abort(self, request_id: str) -> None:
        if self._lost is None:
            self._send(("abort", request_id))

    async def score(self, prompt: str, continuations: list[str]) -> list[float]:
        return await self._call("score", prompt, continuations)

    async def sequence_logprobs(self, token_ids: list[int], top: int = 0, start: int = 0):
        return await self._call("sequence_logprobs", token_ids, top, start)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self._call("embed", texts)

    def stats(self) -> EngineStats:
        """The child's latest snapshot (sent with its events, at least every `STATS_EVERY_S`)."""
        return self._stats

    def _text(self) -> PromptText:
        if self.text is None:
            raise EngineError("the engine process is not started (await engine.start() first)")
        return self.text

    def render(self, request: GenerationRequest) -> str:
        return self._text().render(request)

    def count_tokens(self, text: str) -> int:
        return self._text().count_tokens(text)

    def encode(self, text: str) -> list[int]:
        return self._text().encode(text)

    def decode(self, token_ids: list[int]) -> str:
        return self._text().decode(token_ids)


# --- the child ------------------------------------------------------------------------------------
def serve_engine(config: EngineConfig, conn, initializer: Callable[[], None] | None = None) -> None:
    """The child's main: load the engine, then serve the pipe until shutdown or until the parent is gone."""
    if initializer is not None:
        initializer()
    asyncio.run(_serve(config, conn))


async def _serve(config: EngineConfig, conn) -> None:
    import os

    from vireo.inference.factory import create_engine
    from vireo.inference.local import LocalEngine

    try:
        engine = await asyncio.to_thread(create_engine, config)
        await engine.start()
    except BaseException as exc:  # the parent raises it from start()
        conn.send(("failed", portable(exc)))
        return
    assert isinstance(engine, LocalEngine)  # only local engines run in a process of their own
    conn.send(
        (
            "ready",
            EngineInfo(
                engine.backend,
                engine.model_name,
                engine.model_path,
                engine.context_length,
                engine.accepts_images,
                engine.config,
                engine.stats(),
                os.getpid(),
            ),
        )
    )
    server = _EngineServer(engine, conn, asyncio.get_running_loop())
    threading.Thread(target=server.read, name="vireo-engine-pipe", daemon=True).start()
    await server.stopped
    await engine.shutdown()


class _EngineServer:
    """The child's side: the parent's messages on the child's loop, the engine's events back in batches."""

    def __init__(self, engine: Engine, conn, loop: asyncio.AbstractEventLoop):
        self.engine, self.conn, self.loop = engine, conn, loop
        self.streams: dict[str, asyncio.Task] = {}
        self.outbox: list[tuple[str, Any]] = []
        self.flush_due = False
        self.stats_sent = 0.0
        self.stopped: asyncio.Future = loop.create_future()
        self._background: set[asyncio.Task] = set()
        self.loop.call_later(STATS_EVERY_S, self._stats_tick)

    def read(self) -> None:
        """The pipe's reader thread: each message to the loop; a closed pipe (the parent died) stops it."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = ("shutdown",)
            self.loop.call_soon_threadsafe(self.handle, message)
            if message[0] == "shutdown":
                return

    def handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "generate":
            _, request_id, request = message
            self.streams[request_id] = self._spawn(self._stream(request_id, request))
        elif kind == "abort":  # the caller still listens: the engine ends the request with Finished(abort)
            self._spawn(self.engine.abort(message[1]))
        elif kind == "close":  # nobody listens: closing the stream aborts it in the engine
            task = self.streams.pop(message[1], None)
            if task is not None:
                task.cancel()
        elif kind == "call":
            _, number, method, args = message
            self._spawn(self._answer(number, method, args))
        elif kind == "shutdown" and not self.stopped.done():
            for task in self.streams.values():
                task.cancel()
            self.stopped.set_result(None)

    def _spawn(self, coro) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _stream(self, request_id: str, request: GenerationRequest) -> None:
        try:
            async for event in self.engine.generate(request):
                self._emit(request_id, event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the caller raises it from its generate()
            self._emit(request_id, portable(exc))
        finally:
            self.streams.pop(request_id, None)

    async def _answer(self, number: int, method: str, args: tuple) -> None:
        if method not in CALLS:
            self._send(("reply", number, False, EngineError(f"no such engine call: {method}")))
            return
        try:
            value = await getattr(self.engine, method)(*args)
            self._send(("reply", number, True, value))
        except Exception as exc:
            self._send(("reply", number, False, portable(exc)))

    def _emit(self, request_id: str, event: Any) -> None:
        self.outbox.append((request_id, event))
        if not self.flush_due:  # once per loop turn: every request the step woke has added its event by then
            self.flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_due = False
        events, self.outbox = self.outbox, []
        finished = any(isinstance(event, (Finished, BaseException)) for _, event in events)
        now = time.monotonic()
        stats = None
        if finished or now - self.stats_sent >= STATS_EVERY_S:
            stats, self.stats_sent = self.engine.stats(), now
        self._send(("events", events, stats))

    def _stats_tick(self) -> None:
        if time.monotonic() - self.stats_sent >= STATS_EVERY_S:
            self.stats_sent = time.monotonic()
            self._send(("events", [], self.engine.stats()))
        self.loop.call_later(STATS_EVERY_S, self._stats_tick)

    def _send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except (OSError, EOFError):  # the parent is gone: the reader thread stops the loop
            pass
