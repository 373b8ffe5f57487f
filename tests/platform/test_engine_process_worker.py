"""A worker whose engine runs in a process of its own (`VIREO_OWN_PROCESS`, the default on CUDA): its
jobs run through that process, and when that process dies the worker exits at once, so that the
reaper runs the job again on another worker instead of failing it.
"""

from __future__ import annotations

import psutil
import pytest

from tests.platform.test_jobs import wait_done
from tests.platform.test_reliability import FAST_RECOVERY, counting, submit, worker_running, workers_up
from vireo.platform.processes import wait_until
from vireo.platform.runtime import EXIT_ENGINE_LOST
from vireo.tools.drills.stack import Stack


@pytest.fixture(scope="module")
def stack():
    with Stack(env={**FAST_RECOVERY, "VIREO_OWN_PROCESS": "true"}, workers=2, worker_concurrency=4) as s:
        yield s


@pytest.fixture()
def api(stack):
    with stack.client() as client:
        yield client


def engine_process(worker_pid: int) -> psutil.Process:
    """The worker's engine: its child started by multiprocessing's spawn."""
    children = [
        child
        for child in psutil.Process(worker_pid).children()
        if any("spawn_main" in part for part in child.cmdline())
    ]
    assert len(children) == 1, [child.cmdline() for child in psutil.Process(worker_pid).children()]
    return children[0]


def test_a_job_whose_engine_process_dies_runs_again_elsewhere(stack, api):
    workers_up(stack, 2)
    done = wait_done(api, submit(api, counting(10, 12)))  # a job served through the engine's own process
    assert done["status"] == "succeeded" and done["attempts"] == 1 and done["result"]["text"]

    job_id = submit(api, counting(100, 120))
    victim = worker_running(stack, api, job_id)
    engine_process(stack.workers[victim].pid).kill()

    stack.workers[victim].wait(30)  # the worker exits rather than fail the job
    assert stack.workers[victim].returncode == EXIT_ENGINE_LOST
    job = wait_done(api, job_id, timeout=180)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    wait_until(lambda: stack.redis().sismember("vireo:jobs:running", job_id) == 0, 10, "the job off the running index")
