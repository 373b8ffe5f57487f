"""Drill: escape the code sandbox, in-process and through a real code job.

1. In-process: every attack of the catalogue (`sandbox_attacks.py`; the short run leaves out the slow
   ones) through `run_python` with bubblewrap, aimed at a secret planted outside.
2. Through the REST API of a private stack (redis-server with its AOF, API, one worker): a `code` job
   with `execute: true` runs `tests` after the model's answer, so a tenant can put any program there;
   the attacks go in as `tests` and aim at the real things: the API's and the worker's environments
   (every key), Redis's AOF, the worker process, Redis's port.
Facts: what each run cost and a trivial program's wall and CPU time in the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from vireo.apps.sandbox import SandboxResult, configure_sandbox, current_sandbox, run_python
from vireo.tools.drills.result import DrillResult
from vireo.tools.drills.sandbox_attacks import ATTACKS, SHORT, LocalTarget, Target, attempt
from vireo.tools.drills.stack import ADMIN_KEY, USER_KEY, Stack

REST_SHORT = ("environ_peek", "read_secret_files", "signal_the_worker")
# given code whose greedy completion (the model's part of the program) must parse for the attack after
# it to run at all; the drill uses the first that does
TEMPLATES = (
    'def add(a, b):\n    """Return a + b."""\n',
    'def one():\n    """Return 1."""\n',
    "def noop():\n    pass\n",
)
STARTED = "print('ATTACK-STARTED', flush=True)\n"


def run(short: bool) -> DrillResult:
    result = DrillResult(name="sandbox_escapes")
    asyncio.run(_in_process(result, short))
    _through_rest(result, short)
    return result.done()


async def _in_process(result: DrillResult, short: bool) -> None:
    configure_sandbox("bwrap")
    try:
        sandbox = await current_sandbox()
        result.facts["isolation"] = sandbox.isolation
        result.facts["bwrap"] = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
        result.facts["kernel"] = os.uname().release
        durations = {}
        with LocalTarget() as target:
            for attack in SHORT if short else ATTACKS:
                outcome = await attempt(attack, target)
                durations[attack.name] = outcome.duration_s
                _record(result, f"in-process {attack.name}", attack.what, attack.failure(outcome, target))
        result.facts["in_process_run_s"] = durations
        result.facts["trivial_run"] = await _startup_cost(runs=10 if short else 40)
    finally:
        configure_sandbox()


async def _startup_cost(runs: int) -> dict:
    """Wall time of `pass` in the sandbox (bwrap, namespaces, filter, interpreter) and of the same
    interpreter started bare (`python -I -S -c pass`), medians. (CPU time is not given: what runs
    inside the PID namespace is not all counted in this process's children's usage.)"""
    sandbox = await current_sandbox()

    async def median_ms(action) -> float:
        walls = []
        for _ in range(runs):
            began = time.perf_counter()
            await action()
            walls.append(time.perf_counter() - began)
        return round(statistics.median(walls) * 1000, 1)

    async def sandboxed():
        outcome = await run_python("pass")
        assert outcome.passed, outcome.stderr

    async def bare():
        proc = await asyncio.create_subprocess_exec(sandbox.interpreter.executable, "-I", "-S", "-c", "pass")
        await proc.wait()

    await sandboxed()  # the one-time probe is not part of the per-run cost
    return {
        "runs": runs,
        "sandbox_wall_ms_median": await median_ms(sandboxed),
        "bare_python_wall_ms_median": await median_ms(bare),
        "load_average": os.getloadavg()[0],
    }


def _through_rest(result: DrillResult, short: bool) -> None:
    with Stack() as stack:
        target = _stack_target(stack)
        with stack.client(USER_KEY, timeout=30) as client:
            template, isolation = _working_template(client)
            if template is None:
                result.check(False, "REST: no template's completion parsed, so no attack could run through a job")
                return
            result.facts["rest_isolation"] = isolation
            chosen = ATTACKS if not short else [a for a in ATTACKS if a.name in REST_SHORT]
            if isolation != "bwrap":  # never aim kill -9 -1 and the like at a worker without namespaces
                result.check(False, f"REST: the worker runs code with isolation {isolation!r}, not bwrap")
                chosen = [a for a in chosen if not a.hazardous]
            for attack in chosen:
                execution = _code_job(client, template, target.program(attack), attack.limits.timeout_s)
                if isinstance(execution, str):
                    result.check(False, f"REST {attack.name}: the job did not run: {execution}")
                    continue
                outcome = SandboxResult(**execution)
                failure = attack.failure(outcome, target)
                if failure is None and outcome.isolation != "bwrap":
                    failure = f"the worker ran it with isolation {outcome.isolation!r}"
                if failure is None and stack.workers[0].poll() is not None:
                    failure = "the worker died"
                _record(result, f"REST {attack.name}", attack.what, failure)
        result.facts["rest_template"] = template


def _stack_target(stack: Stack) -> Target:
    """The real things: Redis's AOF and the stack's logs, the API (every key in its environment),
    the worker, Redis's port; the admin key is the secret."""
    files = [str(p) for p in Path(stack.dir).rglob("*") if p.is_file()]
    if stack.api_proc is None:
        raise RuntimeError("the stack's API is not running")
    return Target(
        secret=ADMIN_KEY,
        secret_files=files,
        outside_dir=str(stack.dir),
        worker_pid=stack.workers[0].pid,
        bystander_pid=stack.api_proc.pid,
        port=stack.redis_port,
    )


def _working_template(client: httpx.Client) -> tuple[str | None, str | None]:
    """The first template whose job runs the program after it, and the worker's isolation."""
    for template in TEMPLATES:
        execution = _code_job(client, template, STARTED, 10)
        if isinstance(execution, dict) and "ATTACK-STARTED" in execution["stdout"]:
            return template, execution["isolation"]
    return None, None


def _code_job(client: httpx.Client, code: str, tests: str, timeout_s: float) -> dict | str:
    """Submit a code job whose `tests` is `tests`; its execution, or why there is none."""
    body = {
        "app": "code",
        "input": {
            "task": "complete",
            "code": code,
            "tests": tests,
            "execute": True,
            "timeout_s": timeout_s,
            "max_tokens": 16,
        },
    }
    reply = client.post("/v1/jobs", json=body)
    if reply.status_code != 202:
        return f"{reply.status_code} {reply.text[:300]}"
    job_id = reply.json()["id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            execution = (job.get("result") or {}).get("execution")
            return execution or f"{job['status']}: {json.dumps(job.get('error'))[:300]}"
        time.sleep(0.2)
    return "no result within 180 s"


def _record(result: DrillResult, name: str, what: str, failure: str | None) -> None:
    result.check(failure is None, f"{name}: {what}" + (f" -- GOT THROUGH: {failure}" if failure else ""))


if __name__ == "__main__":
    drill = run(short="--short" in sys.argv)
    print(json.dumps(drill.to_dict(), indent=2))
