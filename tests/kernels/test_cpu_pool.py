"""The helper threads our CPU kernels' parallel loops run on (`csrc/cpu_pool.cpp`): every task runs once,
in the part it belongs to, on as many threads as torch's setting allows; loops from two threads at once
and a forked child stay whole; and every kernel extension runs on the one pool."""

import multiprocessing
import threading

import pytest
import torch

from vireo.kernels import cpu_extensions

pytestmark = pytest.mark.skipif(cpu_extensions.load("cpu_pool") is None, reason="AVX2 extension not available here")


def pool():
    module = cpu_extensions.load("cpu_pool")
    assert module is not None
    return module


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def expected_parts(tasks: int, parts: int) -> list[int]:
    starts = [tasks * p // parts for p in range(parts)]
    return [max(s for s in starts if s <= i) for i in range(tasks)]


def test_each_task_runs_once_in_its_part_on_two_threads(two_threads):
    for tasks in (2, 7, 100, 1001):
        *owners, threads = pool().parts_of(tasks, 1)
        assert owners == expected_parts(tasks, 2)
        assert threads == 2


def test_a_loop_smaller_than_its_grain_stays_on_the_caller(two_threads):
    *owners, threads = pool().parts_of(10, 16)
    assert owners == [0] * 10 and threads == 1


def test_one_thread_runs_everything_where_torch_says_one():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        *owners, threads = pool().parts_of(64, 1)
    finally:
        torch.set_num_threads(before)
    assert owners == [0] * 64 and threads == 1


def test_loops_from_two_threads_at_once_stay_whole():
    """A loop that finds the pool busy runs alone; none is lost or split wrongly, thousands in a row."""
    failures: list[str] = []

    def hammer():
        torch.set_num_threads(2)  # per thread, as the engine's step thread sets it
        for i in range(3000):
            tasks = 1 + i % 97
            *owners, _ = pool().parts_of(tasks, 1)
            if owners not in (expected_parts(tasks, 2), [0] * tasks):
                failures.append(f"{tasks}: {owners}")

    workers = [threading.Thread(target=hammer) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not any(worker.is_alive() for worker in workers) and failures == []


def _child(queue) -> None:
    torch.set_num_threads(2)
    *owners, threads = pool().parts_of(50, 1)
    queue.put((owners == expected_parts(50, 2), threads))


def test_a_forked_child_has_a_pool_of_its_own(two_threads):
    pool().parts_of(100, 1)  # the parent's helpers are running
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue,))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the child hung or died running a loop on its copy of the pool"
    assert queue.get(timeout=5) == (True, 2)


def test_every_kernel_extension_runs_on_the_pool(two_threads):
    from vireo.kernels import cpu_gguf_dot

    pool().parts_of(100, 1)
    helpers = pool().helpers()
    kernel = cpu_gguf_dot.load_kernel()
    assert kernel is not None and hasattr(kernel, "use_pool")
    for name in ("cpu_decode_ops", "cpu_int8dot", "cpu_paged_attention", "cpu_gguf_dot"):
        assert hasattr(cpu_extensions.load(name), "use_pool"), name
    x = torch.randn(1, 256)
    blocks = torch.zeros(64, 256 // 32 * 34, dtype=torch.uint8)
    kernel.gguf_mm(x, blocks, 8, 256)
    assert pool().helpers() == helpers == 1  # one process-wide helper for two threads, whoever loops
