"""The engine in a process of its own (engine_process.py): what the pipe adds to the engine contract.

The contract itself runs on it in test_contract.py (the `native-process` backend); here: errors keep
their fields across the pipe, closing a stream aborts it in the child, a child that dies fails its
callers (after telling `on_lost`), a load that fails is raised from `start()`, and a child whose
parent dies does not outlive it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from vireo.inference.api import (
    EngineError,
    Finished,
    GenerationRequest,
    PromptTooLongError,
    SamplingParams,
    UnknownModelError,
)
from vireo.inference.engine_config import EngineConfig
from vireo.inference.engine_process import EngineProcess
from vireo.inference.factory import create_engine

pytestmark = pytest.mark.slow  # each test starts an engine process (torch import + model load)


def tiny_config(tmp_path, **overrides) -> EngineConfig:
    """random:tiny: a real shape, seeded weights and a real tokenizer, loaded in a second."""
    settings = dict(backend="native", model="random:tiny", home=tmp_path, own_process=True, max_model_len=256)
    settings["threads"] = 1
    return EngineConfig(**(settings | overrides))


def counting(max_tokens: int, **sampling) -> GenerationRequest:
    return GenerationRequest(
        prompt="one two three", sampling=SamplingParams(max_tokens=max_tokens, ignore_eos=True, **sampling)
    )


async def settled_running(engine: EngineProcess, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while engine.stats().running and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return engine.stats().running


def test_settings_choose_the_process():
    cpu = EngineConfig(model="random:tiny").resolved()
    assert cpu.device == "cpu" and cpu.own_process is False  # default: only on CUDA
    assert EngineConfig(model="random:tiny", own_process=True).resolved().own_process is True
    # the openai and vllm backends run their model elsewhere already: the setting does not apply
    assert EngineConfig(backend="openai", own_process=True).resolved().own_process is False


async def test_same_tokens_as_the_engine_in_this_process(tmp_path):
    here = create_engine(tiny_config(tmp_path, own_process=False))
    apart = create_engine(tiny_config(tmp_path))
    assert isinstance(apart, EngineProcess) and not isinstance(here, EngineProcess)
    await here.start()
    await apart.start()
    try:
        assert apart.pid not in (None, os.getpid())
        assert (apart.backend, apart.model_name, apart.context_length) == (
            here.backend,
            here.model_name,
            here.context_length,
        )
        ours, theirs = await asyncio.gather(apart.complete(counting(24)), here.complete(counting(24)))
        assert ours.text == theirs.text and ours.usage == theirs.usage and ours.finish_reason == "length"
        assert apart.count_tokens("one two three") == here.count_tokens("one two three")
        assert apart.stats().generated_tokens >= 24  # the snapshot sent with the Finished event
        ids = here.encode("one two three four")
        assert await apart.sequence_logprobs(ids, top=2) == await here.sequence_logprobs(ids, top=2)
    finally:
        await apart.shutdown()
        await here.shutdown()
    assert not psutil.pid_exists(apart.pid) or psutil.Process(apart.pid).status() == psutil.STATUS_ZOMBIE


async def test_errors_keep_their_kind_and_fields(tmp_path):
    engine = create_engine(tiny_config(tmp_path))
    await engine.start()
    try:
        with pytest.raises(PromptTooLongError) as too_long:
            await engine.complete(GenerationRequest(prompt=" one" * 400, sampling=SamplingParams(max_tokens=4)))
        assert too_long.value.context_length == 256 and too_long.value.max_tokens == 4
        with pytest.raises(ValueError, match="continuation"):
            await engine.score("a prompt", [""])
        assert (await engine.complete(counting(3))).finish_reason == "length"  # and it still serves
    finally:
        await engine.shutdown()


async def test_abort_and_close(tmp_path):
    engine = create_engine(tiny_config(tmp_path))
    await engine.start()
    try:
        request = counting(200)
        events = []
        async for event in engine.generate(request):
            events.append(event)
            if len(events) == 2:
                await engine.abort(request.request_id)  # still listening: the stream ends with Finished(abort)
        assert isinstance(events[-1], Finished) and events[-1].finish_reason == "abort"

        stream = engine.generate(counting(200))
        await stream.__anext__()
        await stream.aclose()  # nobody listens any more: the child aborts it
        assert await settled_running(engine) == 0
    finally:
        await engine.shutdown()


async def test_a_dead_child_fails_its_callers_after_telling_on_lost(tmp_path):
    told: list[str] = []
    engine = create_engine(tiny_config(tmp_path))
    assert isinstance(engine, EngineProcess)
    engine.on_lost = told.append
    await engine.start()
    try:
        stream = engine.generate(counting(200))
        await stream.__anext__()
        os.kill(engine.pid, signal.SIGKILL)
        with pytest.raises(EngineError, match="exited"):
            async for _ in stream:
                pass
        assert len(told) == 1 and "exited (code -9)" in told[0]
        with pytest.raises(EngineError, match="exited"):  # and every later call, at once
            await engine.complete(counting(2))
    finally:
        await engine.shutdown()


async def test_a_failed_load_is_raised_from_start(tmp_path):
    engine = EngineProcess(EngineConfig(backend="native", model="no-such-model", home=tmp_path, own_process=True))
    with pytest.raises(UnknownModelError) as failed:
        await engine.start()
    assert failed.value.name == "no-such-model" and "smollm2-135m" in failed.value.known


def test_the_child_ends_with_its_parent(tmp_path):
    """kill -9 of the process that holds the engine (a worker OOM-killed) leaves no engine behind."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from vireo.inference.engine_config import EngineConfig
        from vireo.inference.factory import create_engine

        async def main():
            engine = create_engine(EngineConfig(model="random:tiny", home={str(tmp_path)!r}, own_process=True))
            await engine.start()
            print(engine.pid, flush=True)
            time.sleep(600)

        asyncio.run(main())
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert psutil.pid_exists(child)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 20
        while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the engine process outlived its parent"
            time.sleep(0.1)
    finally:
        parent.kill()
